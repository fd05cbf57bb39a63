/* test_http.c - C tests for the libcurl side of the core (src/http.c, src/multi.c) that need
 * no server: libcurl's one-time process init from many threads at once.
 */
#include "http.h"
#include "multi.h"
#include "ctest.h"

#include <pthread.h>

#define NTHREADS 8

/* Each thread races to be the first to open a session and a multi: the init must run once
 * and every thread must see it done (ASan, UBSan and valgrind watch the same run). */
static void *open_handles(void *arg)
{
    static const eip_http_config cfg = {NULL, 0, "test_http"};
    char err[128];
    eip_http *h;
    eip_multi *m;
    int *ok = arg;

    *ok = eip_http_global_init() == 0;
    h = eip_http_new(&cfg, err, sizeof(err));
    m = eip_multi_new(&cfg, err, sizeof(err));
    *ok = *ok && h != NULL && m != NULL;
    eip_http_free(h);
    eip_multi_free(m);
    return NULL;
}

static void test_global_init_threads(void)
{
    pthread_t th[NTHREADS];
    int ok[NTHREADS] = {0}, started[NTHREADS] = {0};
    int i;

    for (i = 0; i < NTHREADS; i++)
        started[i] = pthread_create(&th[i], NULL, open_handles, &ok[i]) == 0;
    for (i = 0; i < NTHREADS; i++) {
        CHECK(started[i], "thread %d did not start", i);
        if (started[i])
            pthread_join(th[i], NULL);
        CHECK(ok[i], "thread %d could not open a session and a multi", i);
    }
    /* Later calls answer from the once-run init. */
    CHECK(eip_http_global_init() == 0, "global init after the threads");
    CHECK(eip_http_global_init() == 0, "global init again");
}

int main(void)
{
    test_global_init_threads();
    return CTEST_END("http");
}
