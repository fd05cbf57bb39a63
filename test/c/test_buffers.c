/* test_buffers.c - what a session and a multi keep of an answer once it has been handed over
 * (src/http.c eip_http_transfer_trim, src/multi.c eip_multi_trim): a body or token buffer
 * grown past EIP_HTTP_BODY_KEEP_MAX / EIP_HTTP_TOKEN_KEEP_MAX for one answer is freed, so 64
 * slots do not each hold a body cap's worth for the multi's life; smaller buffers stay and are
 * reused without allocating. Exchanges go to a tiny HTTP server on 127.0.0.1 run by a thread of
 * this test (one answer per connection, chosen by the path).
 */
#include "http.h"
#include "multi.h"
#include "ctest.h"
#include "ctest_net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BIG_BODY ((size_t)600 << 10) /* over EIP_HTTP_BODY_KEEP_MAX, under the default cap */
#define BIG_TOKEN ((size_t)50000)    /* over EIP_HTTP_TOKEN_KEEP_MAX, under EIP_HTTP_TOKEN_MAX */

static int listener = -1;
static int port;

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* One connection: reads the request head, answers by its path, closes. */
static void answer(int fd)
{
    char req[4096], head[256];
    size_t got = 0, body_len = 2, token_len = 0, i;
    char *body, *token = NULL;
    while (got < sizeof(req) - 1) {
        ssize_t k = recv(fd, req + got, sizeof(req) - 1 - got, 0);
        if (k <= 0)
            return;
        got += (size_t)k;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL)
            break;
    }
    if (strncmp(req, "GET /big ", 9) == 0)
        body_len = BIG_BODY;
    else if (strncmp(req, "GET /big-token ", 15) == 0)
        token_len = BIG_TOKEN;
    else if (strncmp(req, "GET /token ", 11) == 0)
        token_len = 100;
    body = malloc(body_len);
    if (token_len > 0)
        token = malloc(token_len + 1);
    if (body == NULL || (token_len > 0 && token == NULL)) {
        free(body);
        free(token);
        return;
    }
    memset(body, 'b', body_len);
    for (i = 0; i < token_len; i++)
        token[i] = (char)('A' + i % 26);
    snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n%s",
             body_len, token_len ? "X-Subject-Token: " : "\r\n");
    if (send_all(fd, head, strlen(head)) == 0 && (token_len == 0 || (send_all(fd, token, token_len) == 0 &&
                                                                       send_all(fd, "\r\n\r\n", 4) == 0)))
        send_all(fd, body, body_len);
    free(body);
    free(token);
}

static void *serve(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0)
            return NULL; /* the listener was shut down: the tests are over */
        answer(fd);
        close(fd);
    }
}

static int start_server(pthread_t *th)
{
    listener = ctest_listen(&port);
    if (listener < 0)
        return -1;
    return pthread_create(th, NULL, serve, NULL) == 0 ? 0 : -1;
}

static void get(eip_http_request *req, char *url, size_t cap, const char *path)
{
    memset(req, 0, sizeof(*req));
    snprintf(url, cap, "http://127.0.0.1:%d%s", port, path);
    req->method = "GET";
    req->url = url;
    req->timeout_ms = req->connect_timeout_ms = 10000;
}

/* Sends GET path on the session; 0 when the answer is whole. */
static int fetch(eip_http *h, const char *path, eip_http_response *resp)
{
    eip_http_request req;
    char url[128];
    get(&req, url, sizeof(url), path);
    return eip_http_perform(h, &req, resp) == 0 && resp->status == 200 && !resp->truncated ? 0 : -1;
}

static void test_session(void)
{
    static const eip_http_config cfg = {NULL, 0, "test_buffers"};
    char err[128];
    eip_http_response resp;
    eip_http *h = eip_http_new(&cfg, err, sizeof(err));
    size_t small;

    CHECK(h != NULL, "session: %s", err);
    if (h == NULL)
        return;
    /* A small answer: a small buffer, kept by a trim and reused. */
    CHECK(fetch(h, "/small", &resp) == 0 && resp.body_len == 2, "small answer");
    small = eip_http_buffered(h);
    CHECK(small > 0 && small <= EIP_HTTP_BODY_KEEP_MAX, "small buffer: %zu", small);
    eip_http_trim(h);
    CHECK(eip_http_buffered(h) == small, "a small buffer stays: %zu", eip_http_buffered(h));
    CHECK(fetch(h, "/small", &resp) == 0 && eip_http_buffered(h) == small, "and is reused");

    /* A large one: held until handed over, then given back. */
    CHECK(fetch(h, "/big", &resp) == 0 && resp.body_len == BIG_BODY, "large answer");
    CHECK(eip_http_buffered(h) > BIG_BODY, "the large body is held: %zu", eip_http_buffered(h));
    eip_http_trim(h);
    CHECK(eip_http_buffered(h) == 0, "trimmed: %zu bytes left", eip_http_buffered(h));
    CHECK(fetch(h, "/small", &resp) == 0 && eip_http_buffered(h) <= small, "small again: %zu",
          eip_http_buffered(h));

    /* Not trimmed (a caller that could not hand it over): the next request gives it back. */
    CHECK(fetch(h, "/big", &resp) == 0 && eip_http_buffered(h) > BIG_BODY, "large answer again");
    CHECK(fetch(h, "/small", &resp) == 0 && eip_http_buffered(h) <= small, "the next request trims: %zu",
          eip_http_buffered(h));

    /* A token: a usual one stays, a large one goes. */
    CHECK(fetch(h, "/token", &resp) == 0 && resp.subject_token_len == 100, "token");
    eip_http_trim(h);
    CHECK(eip_http_buffered(h) > small && eip_http_buffered(h) <= small + EIP_HTTP_TOKEN_KEEP_MAX,
          "a usual token's buffer stays: %zu", eip_http_buffered(h));
    CHECK(fetch(h, "/big-token", &resp) == 0 && resp.subject_token_len == BIG_TOKEN, "large token");
    CHECK(eip_http_buffered(h) > BIG_TOKEN, "the large token is held");
    eip_http_trim(h);
    CHECK(eip_http_buffered(h) <= small, "its buffer is given back: %zu", eip_http_buffered(h));
    eip_http_free(h);
}

/* Every slot of a multi, as the Lua binding drives it: next, then trim of the slot returned. */
static void test_multi(void)
{
    static const eip_http_config cfg = {NULL, 0, "test_buffers"};
    enum { SLOTS = 4 };
    char err[128], url[128];
    eip_http_request req;
    const eip_http_response *resp;
    eip_multi *m = eip_multi_new(&cfg, err, sizeof(err));
    int i, slot, done, whole;

    CHECK(m != NULL, "multi: %s", err);
    if (m == NULL)
        return;
    eip_multi_set_limit(m, SLOTS);
    for (i = 0; i < SLOTS; i++) {
        get(&req, url, sizeof(url), "/big");
        CHECK(eip_multi_start(m, &req, err, sizeof(err)) >= 0, "start %d: %s", i, err);
    }
    for (done = whole = 0; done < SLOTS && (slot = eip_multi_next(m, 10000, &resp)) >= 0; done++)
        whole += resp->status == 200 && resp->body_len == BIG_BODY;
    CHECK(done == SLOTS && whole == SLOTS, "%d large answers, %d whole", done, whole);
    CHECK(eip_multi_buffered(m) > SLOTS * BIG_BODY, "the slots hold them: %zu", eip_multi_buffered(m));
    for (i = 0; i < SLOTS; i++)
        eip_multi_trim(m, i);
    eip_multi_trim(m, -1);
    eip_multi_trim(m, 64); /* no such slot: nothing */
    CHECK(eip_multi_buffered(m) == 0, "trimmed: %zu bytes left", eip_multi_buffered(m));

    for (i = 0; i < SLOTS; i++) {
        get(&req, url, sizeof(url), "/small");
        CHECK(eip_multi_start(m, &req, err, sizeof(err)) >= 0, "start %d: %s", i, err);
    }
    for (done = whole = 0; done < SLOTS && (slot = eip_multi_next(m, 10000, &resp)) >= 0; done++) {
        whole += resp->status == 200 && resp->body_len == 2;
        eip_multi_trim(m, slot);
    }
    CHECK(done == SLOTS && whole == SLOTS, "%d small answers, %d whole", done, whole);
    CHECK(eip_multi_buffered(m) > 0 && eip_multi_buffered(m) <= SLOTS * (size_t)4096,
          "small buffers stay: %zu", eip_multi_buffered(m));

    /* A large answer cancelled before it was collected is given back by the cancel. */
    get(&req, url, sizeof(url), "/big");
    CHECK(eip_multi_start(m, &req, err, sizeof(err)) >= 0, "start: %s", err);
    for (i = 0; i < 3 && eip_multi_peek(m, 10000, &resp) < 0; i++)
        ;
    CHECK(eip_multi_buffered(m) > BIG_BODY, "held until collected: %zu", eip_multi_buffered(m));
    eip_multi_cancel(m, NULL);
    CHECK(eip_multi_buffered(m) <= SLOTS * (size_t)4096, "a cancel gives it back: %zu", eip_multi_buffered(m));
    eip_multi_free(m);
}

int main(void)
{
    pthread_t th;
    int served;
    CHECK(eip_http_global_init() == 0, "libcurl init");
    served = start_server(&th) == 0;
    CHECK(served, "a server on 127.0.0.1");
    if (served) {
        test_session();
        test_multi();
        shutdown(listener, SHUT_RDWR); /* accept fails: the server thread ends */
        pthread_join(th, NULL);
        close(listener);
    }
    return CTEST_END("buffers");
}
