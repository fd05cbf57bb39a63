/* test_fork.c - a session or a multi made before a fork is never shared with the child (src/http.c
 * and src/multi.c, "Fork safety" in http.h): nginx's master runs init_by_lua, then forks its
 * workers, each with a copy of every libcurl handle and of the sockets of their kept-alive
 * connections. Used from both processes, one connection would carry both processes' requests and
 * hand each the other's answers. Here a parent makes a connection with each, forks, and the child
 * sends again: it must open connections of its own and leave the parent's alone (nothing sent on
 * them, not closed for the parent), and a transfer the multi was running at the fork must come
 * back at once in the child as a failure, its answer left to the parent.
 *
 * The server is a thread of this test on 127.0.0.1 (so only in the parent): each connection is
 * numbered, and each answer says which request of which connection it is ("X-Request-Id:
 * <path>@<connection>#<request on it>"); a GET /slow is answered after 300 ms.
 */
#include "http.h"
#include "multi.h"
#include "ctest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int listener = -1;
static int port;
static int connections; /* accepted so far (the server thread's) */

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

typedef struct {
    int fd, number;
} conn;

/* One connection, kept alive: each request head (no bodies here) gets a numbered answer. */
static void *serve_conn(void *arg)
{
    conn *c = arg;
    char buf[8192], path[256], out[512];
    size_t got = 0;
    int requests = 0;
    buf[0] = '\0';
    for (;;) {
        char *end = strstr(buf, "\r\n\r\n");
        if (got == 0 || end == NULL) {
            ssize_t k;
            if (got >= sizeof(buf) - 1)
                break;
            k = recv(c->fd, buf + got, sizeof(buf) - 1 - got, 0);
            if (k <= 0)
                break;
            got += (size_t)k;
            buf[got] = '\0';
            continue;
        }
        requests++;
        if (sscanf(buf, "%*s %255s", path) != 1)
            break;
        if (strcmp(path, "/slow") == 0) {
            struct timespec ts = {0, 300 * 1000000L};
            nanosleep(&ts, NULL);
        }
        snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Request-Id: %s@%d#%d\r\n\r\n", path,
                 c->number, requests);
        if (send_all(c->fd, out, strlen(out)) != 0)
            break;
        end += 4;
        got -= (size_t)(end - buf);
        memmove(buf, end, got);
        buf[got] = '\0';
    }
    close(c->fd);
    free(c);
    return NULL;
}

static void *serve(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_t th;
        conn *c;
        int fd = accept(listener, NULL, NULL);
        if (fd < 0)
            return NULL; /* the listener was shut down: the tests are over */
        c = malloc(sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->number = ++connections;
        if (pthread_create(&th, NULL, serve_conn, c) != 0) {
            close(fd);
            free(c);
            continue;
        }
        pthread_detach(th);
    }
}

static int start_server(pthread_t *th)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0)
        return -1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(listener, 64) != 0 ||
        getsockname(listener, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    port = ntohs(a.sin_port);
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

/* The connection and request numbers of an answer to `path` ("<path>@<conn>#<n>"), or -1s. */
static void numbers(const eip_http_response *resp, const char *path, int *c, int *n)
{
    char want[300];
    *c = *n = -1;
    snprintf(want, sizeof(want), "%s@%%d#%%d", path);
    if (resp->curl_code != 0 || resp->status != 200 || sscanf(resp->request_id, want, c, n) != 2)
        *c = *n = -1;
}

/* GET path on the session: its connection and request numbers. */
static void session_get(eip_http *h, const char *path, int *c, int *n)
{
    eip_http_request req;
    eip_http_response resp;
    char url[128];
    get(&req, url, sizeof(url), path);
    eip_http_perform(h, &req, &resp);
    numbers(&resp, path, c, n);
    if (*c < 0)
        fprintf(stderr, "session GET %s: curl %d (%s), status %ld, id \"%s\"\n", path, resp.curl_code,
                resp.curl_error, resp.status, resp.request_id);
}

static int multi_start(eip_multi *m, const char *path)
{
    eip_http_request req;
    char url[128], err[128];
    int slot;
    get(&req, url, sizeof(url), path);
    slot = eip_multi_start(m, &req, err, sizeof(err));
    if (slot < 0)
        fprintf(stderr, "multi start %s: %s\n", path, err);
    return slot;
}

/* GET path on the multi: its connection and request numbers. */
static void multi_get(eip_multi *m, const char *path, int *c, int *n)
{
    const eip_http_response *resp = NULL;
    *c = *n = -1;
    if (multi_start(m, path) < 0 || eip_multi_next(m, 10000, &resp) < 0)
        return;
    numbers(resp, path, c, n);
}

/* Runs fn in a child process; its checks are counted here. */
static void in_child(void (*fn)(eip_http *, eip_multi *), eip_http *h, eip_multi *m)
{
    int fds[2], status = 0, counts[2] = {0, 0};
    pid_t pid;
    if (pipe(fds) != 0) {
        CHECK(0, "pipe");
        return;
    }
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        close(fds[0]);
        ctest_passed_ = ctest_failed_ = 0;
        fn(h, m);
        counts[0] = ctest_passed_;
        counts[1] = ctest_failed_;
        if (write(fds[1], counts, sizeof(counts)) != (ssize_t)sizeof(counts))
            _exit(2);
        /* Killed, not exited: what the child inherited (the parent's memory, a multi abandoned
         * by design) is the parent's to free, and no leak checker (valgrind checks even at
         * _exit) must count it as the child's. */
        kill(getpid(), SIGKILL);
        _exit(3);
    }
    close(fds[1]);
    CHECK(pid > 0, "fork");
    if (pid > 0) {
        CHECK(read(fds[0], counts, sizeof(counts)) == (ssize_t)sizeof(counts), "the child's counts");
        CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "the child ran to its end");
        ctest_passed_ += counts[0];
        ctest_failed_ += counts[1];
    }
    close(fds[0]);
}

static int parent_session_conn, parent_multi_conn;

static void child_sends(eip_http *h, eip_multi *m)
{
    int c, n;
    session_get(h, "/child", &c, &n);
    CHECK(c > 0 && c != parent_session_conn && c != parent_multi_conn && n == 1,
          "the child's session request went on a connection of its own: %d#%d (the parent's: %d, %d)", c, n,
          parent_session_conn, parent_multi_conn);
    session_get(h, "/child-again", &c, &n);
    CHECK(c > 0 && n == 2, "then the child keeps its own connection alive: %d#%d", c, n);
    multi_get(m, "/child-multi", &c, &n);
    CHECK(c > 0 && c != parent_session_conn && c != parent_multi_conn && n == 1,
          "the child's multi request went on a connection of its own: %d#%d", c, n);
    multi_get(m, "/child-multi-again", &c, &n);
    CHECK(c > 0 && n == 2, "then the child's multi keeps its own connection alive: %d#%d", c, n);
}

static void child_frees(eip_http *h, eip_multi *m)
{
    /* What a worker's garbage collector does with the clients inherited from init_by_lua. */
    eip_http_free(h);
    eip_multi_free(m);
    CHECK(1, "freed");
}

static void child_collects(eip_http *h, eip_multi *m)
{
    const eip_http_response *resp = NULL;
    int slot;
    (void)h;
    slot = eip_multi_next(m, 0, &resp);
    CHECK(slot >= 0 && resp != NULL && resp->curl_code == CURLE_GOT_NOTHING && resp->status == 0 &&
              strstr(resp->curl_error, "forked") != NULL,
          "a transfer running at the fork ends at once in the child, as a failure: slot %d, curl %d (%s)", slot,
          resp ? resp->curl_code : -1, resp ? resp->curl_error : "");
    CHECK(eip_multi_pending(m) == 0, "nothing left pending in the child");
    {
        int c, n;
        multi_get(m, "/child-after", &c, &n);
        CHECK(c > 0 && c != parent_multi_conn && n == 1, "then the child's multi sends on its own: %d#%d", c, n);
    }
    eip_multi_free(m);
}

static void test_fork(void)
{
    static const eip_http_config cfg = {NULL, 0, "test_fork"};
    char err[128];
    eip_http *h = eip_http_new(&cfg, err, sizeof(err));
    eip_multi *m = eip_multi_new(&cfg, err, sizeof(err));
    const eip_http_response *resp = NULL;
    int c, n;
    CHECK(h != NULL && m != NULL, "a session and a multi: %s", err);
    if (h == NULL || m == NULL)
        return;
    session_get(h, "/parent", &parent_session_conn, &n);
    CHECK(parent_session_conn > 0 && n == 1, "the parent's session: %d#%d", parent_session_conn, n);
    multi_get(m, "/parent-multi", &parent_multi_conn, &n);
    CHECK(parent_multi_conn > 0 && parent_multi_conn != parent_session_conn && n == 1, "the parent's multi: %d#%d",
          parent_multi_conn, n);

    in_child(child_sends, h, m);
    in_child(child_frees, h, m);
    /* The parent's connections carried nothing of the children's and are still there. */
    session_get(h, "/parent-after", &c, &n);
    CHECK(c == parent_session_conn && n == 2, "the parent's session connection: %d#%d (want %d#2)", c, n,
          parent_session_conn);
    multi_get(m, "/parent-multi-after", &c, &n);
    CHECK(c == parent_multi_conn && n == 2, "the parent's multi connection: %d#%d (want %d#2)", c, n,
          parent_multi_conn);

    /* A transfer in flight at the fork: the child gets a failure at once, the parent the answer. */
    CHECK(multi_start(m, "/slow") >= 0, "a slow request started");
    {
        struct timespec ts = {0, 100 * 1000000L}; /* sent and waiting for its answer */
        eip_multi_next(m, 0, &resp);
        nanosleep(&ts, NULL);
        eip_multi_next(m, 0, &resp);
    }
    in_child(child_collects, h, m);
    CHECK(eip_multi_next(m, 10000, &resp) >= 0 && resp != NULL, "the parent's slow answer");
    numbers(resp, "/slow", &c, &n);
    CHECK(c == parent_multi_conn && n == 3, "the parent's slow answer, on its connection: %d#%d", c, n);

    eip_http_free(h);
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
        test_fork();
        shutdown(listener, SHUT_RDWR); /* accept fails: the server thread ends */
        pthread_join(th, NULL);
        close(listener);
    }
    return CTEST_END("fork");
}
