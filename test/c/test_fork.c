/* test_fork.c - a session or a multi made before a fork is never shared with the child (src/http.c
 * and src/multi.c, "Fork safety" in http.h): nginx's master runs init_by_lua, then forks its
 * workers, each with a copy of every libcurl handle and of the sockets of their kept-alive
 * connections. Used from both processes, one connection would carry both processes' requests and
 * hand each the other's answers. Here a parent makes a connection with each, forks, and the child:
 *
 * - holds none of the parent's connections from the fork on, before any call (a worker that never
 *   calls libcurl must not keep the master's connections open);
 * - sends again: on connections of its own, the parent's left alone (nothing sent on them, not
 *   closed for the parent);
 * - first gives the inherited descriptor numbers to files of its own, as daemons do, then calls
 *   and frees the session and the multi: its files stay open and untouched (libcurl never touches
 *   an inherited handle again, not even to clean it up: that would close the numbers, and over
 *   TLS write a close_notify to them, before reusing them for connections of its own);
 * - collects a transfer the multi was running at the fork at once, as a failure, its answer left
 *   to the parent.
 *
 * The server is a thread of this test on 127.0.0.1 (so only in the parent): each connection is
 * numbered, and each answer says which request of which connection it is ("X-Request-Id:
 * <path>@<connection>#<request on it>"). A GET /held is answered only once the test releases it
 * (held_release), after the server has said it arrived (held_seen): the transfer is in flight at
 * the fork by construction. Every wait is bounded: a child that hangs is killed (and counted as a
 * failure), and the whole test ends itself after TEST_SECONDS.
 */
#include "http.h"
#include "multi.h"
#include "ctest.h"
#include "ctest_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TEST_SECONDS
#define TEST_SECONDS 120 /* the whole test, valgrind included */
#endif
#ifndef CHILD_SECONDS
#define CHILD_SECONDS 30 /* one child, from its fork to its end */
#endif

static int listener = -1;
static int port;
static int connections;                     /* accepted so far (the server thread's) */
static int held_seen[2] = {-1, -1};         /* the server writes a byte when a /held arrives */
static int held_release[2] = {-1, -1};      /* the test writes a byte to let it be answered */

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

/* Waits up to ms for fd to be readable: 1, or 0 on timeout or error. */
static int readable(int fd, int ms)
{
    struct pollfd p;
    int rc;
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    do
        rc = poll(&p, 1, ms);
    while (rc < 0 && errno == EINTR);
    return rc == 1;
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
        if (strcmp(path, "/held") == 0) {
            char b = 0;
            /* Bounded: a test that failed before releasing it does not hang the server. */
            if (write(held_seen[1], "s", 1) != 1 || !readable(held_release[0], 60000) ||
                read(held_release[0], &b, 1) != 1)
                fprintf(stderr, "server: /held answered without a release\n");
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
    if (pipe(held_seen) != 0 || pipe(held_release) != 0)
        return -1;
    listener = ctest_listen(&port);
    if (listener < 0)
        return -1;
    return pthread_create(th, NULL, serve, NULL) == 0 ? 0 : -1;
}

/* A descriptor of this process connected to the test server (the client's end: its peer is the
 * server's port), other than skip; -1 when there is none. */
static int client_fd(int skip)
{
    int fd;
    for (fd = 0; fd < 1024; fd++) {
        struct sockaddr_in a;
        socklen_t alen = sizeof(a);
        if (fd != skip && getpeername(fd, (struct sockaddr *)&a, &alen) == 0 && a.sin_family == AF_INET &&
            ntohs(a.sin_port) == port)
            return fd;
    }
    return -1;
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

/* GET path on the session: its connection and request numbers (-1s on any failure). */
static void session_get(eip_http *h, const char *path, int *c, int *n)
{
    eip_http_request req;
    eip_http_response resp;
    char url[128];
    int rc;
    get(&req, url, sizeof(url), path);
    rc = eip_http_perform(h, &req, &resp);
    numbers(&resp, path, c, n);
    if (rc != 0)
        *c = *n = -1;
    if (*c < 0)
        fprintf(stderr, "session GET %s: rc %d, curl %d (%s), status %ld, id \"%s\"\n", path, rc, resp.curl_code,
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

/* GET path on the multi: its connection and request numbers (-1s on any failure). */
static void multi_get(eip_multi *m, const char *path, int *c, int *n)
{
    const eip_http_response *resp = NULL;
    int slot;
    *c = *n = -1;
    if ((slot = multi_start(m, path)) < 0)
        return;
    if (eip_multi_next(m, 10000, &resp) != slot || resp == NULL) {
        fprintf(stderr, "multi GET %s: no answer in 10 s\n", path);
        return;
    }
    numbers(resp, path, c, n);
    if (*c < 0)
        fprintf(stderr, "multi GET %s: curl %d (%s), status %ld, id \"%s\"\n", path, resp->curl_code,
                resp->curl_error, resp->status, resp->request_id);
}

/* Runs fn in a child process; its checks are counted here. The child ends itself after
 * CHILD_SECONDS (SIGALRM), and is killed if it has not reported by then. */
static void in_child(const char *what, void (*fn)(eip_http *, eip_multi *), eip_http *h, eip_multi *m)
{
    int fds[2], status = 0, counts[2] = {0, 0}, reported;
    pid_t pid;
    if (pipe(fds) != 0) {
        CHECK(0, "%s: pipe", what);
        return;
    }
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        close(fds[0]);
        alarm(CHILD_SECONDS);
        ctest_passed_ = ctest_failed_ = 0;
        fn(h, m);
        counts[0] = ctest_passed_;
        counts[1] = ctest_failed_;
        if (write(fds[1], counts, sizeof(counts)) != (ssize_t)sizeof(counts))
            _exit(2);
        fflush(NULL);
        /* Killed, not exited: what the child inherited (the parent's memory, handles abandoned by
         * design) is the parent's to free, and no leak checker (valgrind checks even at _exit)
         * must count it as the child's. */
        kill(getpid(), SIGKILL);
        _exit(3);
    }
    close(fds[1]);
    CHECK(pid > 0, "%s: fork", what);
    if (pid > 0) {
        reported = readable(fds[0], (CHILD_SECONDS + 5) * 1000) &&
                   read(fds[0], counts, sizeof(counts)) == (ssize_t)sizeof(counts);
        CHECK(reported, "%s: the child reported its checks (else it hung or died)", what);
        if (!reported)
            kill(pid, SIGKILL);
        CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "%s: the child ran to its end (status 0x%x)", what, (unsigned)status);
        ctest_passed_ += counts[0];
        ctest_failed_ += counts[1];
    }
    close(fds[0]);
}

/* The parent's connections: their numbers at the server, and their descriptors here. */
static int parent_session_conn, parent_multi_conn, session_fd = -1, multi_fd = -1;

static int fd_closed(int fd)
{
    errno = 0;
    return fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

static void child_holds_nothing(eip_http *h, eip_multi *m)
{
    int other;
    (void)h;
    (void)m;
    /* Before any call: the fork itself let go of the parent's connections in the child. */
    CHECK(fd_closed(session_fd), "the session's connection (fd %d) is closed in the child at the fork", session_fd);
    CHECK(fd_closed(multi_fd), "the multi's connection (fd %d) is closed in the child at the fork", multi_fd);
    other = client_fd(-1);
    CHECK(other < 0, "no connection of the parent's left in the child: fd %d", other);
}

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

/* The child's own file, given the numbers of the parent's connections (a daemon closing what it
 * does not know and opening its log): its path, its identity. */
static char user_path[64];
static struct stat user_st;
static int grand_fd = -1, child_conn = -1; /* child_forks_again's */

/* Gives the parent's connection numbers to a new file of the child's. 0, or -1. */
static int take_numbers(const int *numbers, int count)
{
    int f, g, i;
    snprintf(user_path, sizeof(user_path), "/tmp/eip-test-fork.XXXXXX");
    if ((g = mkstemp(user_path)) < 0)
        return -1;
    /* Opened on one of the numbers (free in the child since the fork), it would be closed below. */
    f = fcntl(g, F_DUPFD, 256);
    close(g);
    if (f < 0 || fstat(f, &user_st) != 0)
        return -1;
    for (i = 0; i < count; i++)
        if (dup2(f, numbers[i]) != numbers[i])
            return -1;
    close(f);
    return 0;
}

/* Is fd still the child's file, open, with nothing written to it? */
static int still_users(int fd, const char *when)
{
    struct stat st;
    int found = fstat(fd, &st) == 0, err = errno;
    int same = found && st.st_dev == user_st.st_dev && st.st_ino == user_st.st_ino;
    CHECK(same && st.st_size == 0, "%s: fd %d is still the child's file, open and empty (%s, %lld bytes)", when, fd,
          !found ? strerror(err) : same ? "the file" : "another file", found ? (long long)st.st_size : -1LL);
    return same && st.st_size == 0;
}

/* Then the file takes the child's own writes, through both numbers, and nothing else. */
static void users_writes(const int *numbers, int count)
{
    struct stat st;
    int i, wrote = 1;
    memset(&st, 0, sizeof(st));
    for (i = 0; i < count; i++)
        wrote &= write(numbers[i], "mine\n", 5) == 5;
    CHECK(wrote && stat(user_path, &st) == 0 && st.st_size == 5 * count,
          "the child's writes went to its file, nothing else did: %lld bytes (want %d)",
          (long long)st.st_size, 5 * count);
    unlink(user_path);
}

static void child_reuses_numbers(eip_http *h, eip_multi *m)
{
    int numbers[2], c, n;
    numbers[0] = session_fd;
    numbers[1] = multi_fd;
    if (take_numbers(numbers, 2) != 0) {
        CHECK(0, "the child's file on fds %d and %d: %s", session_fd, multi_fd, strerror(errno));
        return;
    }
    session_get(h, "/child-reuse", &c, &n);
    CHECK(c > 0 && c != parent_session_conn && c != parent_multi_conn && n == 1,
          "the child's session request, its file on the inherited numbers: %d#%d", c, n);
    still_users(session_fd, "after the session's first request");
    session_get(h, "/child-reuse-again", &c, &n);
    CHECK(c > 0 && n == 2, "then on that connection again: %d#%d", c, n);
    multi_get(m, "/child-reuse-multi", &c, &n);
    CHECK(c > 0 && c != parent_session_conn && c != parent_multi_conn && n == 1,
          "the child's multi request, its file on the inherited numbers: %d#%d", c, n);
    still_users(multi_fd, "after the multi's first request");
    eip_http_free(h);
    eip_multi_free(m);
    still_users(session_fd, "after the session was freed");
    still_users(multi_fd, "after the multi was freed");
    users_writes(numbers, 2);
}

/* The same, the first thing the child does with them being to free them (a worker's GC). */
static void child_reuses_then_frees(eip_http *h, eip_multi *m)
{
    int numbers[2];
    numbers[0] = session_fd;
    numbers[1] = multi_fd;
    if (take_numbers(numbers, 2) != 0) {
        CHECK(0, "the child's file on fds %d and %d: %s", session_fd, multi_fd, strerror(errno));
        return;
    }
    eip_http_free(h);
    still_users(session_fd, "after the session was freed, unused");
    eip_multi_free(m);
    still_users(multi_fd, "after the multi was freed, unused");
    users_writes(numbers, 2);
}

static void grandchild_keeps_file(eip_http *h, eip_multi *m)
{
    int c, n;
    (void)m;
    still_users(grand_fd, "in a grandchild, the number its parent gave to a file behind libcurl's back");
    session_get(h, "/grandchild", &c, &n);
    CHECK(c > 0 && c != parent_session_conn && c != child_conn && n == 1,
          "the grandchild's session request went on a connection of its own: %d#%d (its parent's: %d)", c, n,
          child_conn);
    still_users(grand_fd, "after the grandchild's request");
}

/* A second generation: the child's own connection is inherited by its child in turn. And the
 * fork handler closes only what is still the socket libcurl opened: a number the process gave to
 * something else behind libcurl's back (the user's own mistake) is left alone. */
static void child_forks_again(eip_http *h, eip_multi *m)
{
    int n;
    session_get(h, "/child-parent", &child_conn, &n);
    CHECK(child_conn > 0 && n == 1, "the child's own connection: %d#%d", child_conn, n);
    grand_fd = client_fd(-1);
    CHECK(grand_fd >= 0, "its descriptor: %d", grand_fd);
    if (grand_fd < 0 || take_numbers(&grand_fd, 1) != 0) {
        CHECK(0, "the child's file on fd %d: %s", grand_fd, strerror(errno));
        return;
    }
    in_child("a grandchild", grandchild_keeps_file, h, m);
    still_users(grand_fd, "in the child, after its own child");
    unlink(user_path);
    /* The session is the child's, its connection's number the file's now: the user's mistake
     * would follow if it were used again, so it is not. */
}

static void child_collects(eip_http *h, eip_multi *m)
{
    const eip_http_response *resp = NULL;
    int slot, c, n;
    (void)h;
    /* The transfer's connection is the multi's: its number becomes the child's file first. */
    if (take_numbers(&multi_fd, 1) != 0) {
        CHECK(0, "the child's file on fd %d: %s", multi_fd, strerror(errno));
        return;
    }
    slot = eip_multi_next(m, 0, &resp);
    CHECK(slot >= 0 && resp != NULL && resp->curl_code == CURLE_GOT_NOTHING && resp->status == 0 &&
              strstr(resp->curl_error, "forked") != NULL,
          "a transfer running at the fork ends at once in the child, as a failure: slot %d, curl %d (%s)", slot,
          resp ? resp->curl_code : -1, resp ? resp->curl_error : "");
    CHECK(eip_multi_pending(m) == 0, "nothing left pending in the child");
    still_users(multi_fd, "after the running transfer was collected");
    multi_get(m, "/child-after", &c, &n);
    CHECK(c > 0 && c != parent_multi_conn && n == 1, "then the child's multi sends on its own: %d#%d", c, n);
    eip_multi_free(m);
    still_users(multi_fd, "after the multi was freed");
    users_writes(&multi_fd, 1);
}

/* The parent's connections carried nothing of the child's and are still there: the next request
 * on each is the next on its connection. */
static void parent_still_served(eip_http *h, eip_multi *m, int *session_n, int *multi_n, const char *after)
{
    int c, n;
    session_get(h, "/parent-after", &c, &n);
    ++*session_n;
    CHECK(c == parent_session_conn && n == *session_n, "after %s, the parent's session connection: %d#%d (want %d#%d)",
          after, c, n, parent_session_conn, *session_n);
    multi_get(m, "/parent-multi-after", &c, &n);
    ++*multi_n;
    CHECK(c == parent_multi_conn && n == *multi_n, "after %s, the parent's multi connection: %d#%d (want %d#%d)",
          after, c, n, parent_multi_conn, *multi_n);
}

static void test_fork(void)
{
    static const eip_http_config cfg = {NULL, 0, "test_fork"};
    char err[128];
    eip_http *h = eip_http_new(&cfg, err, sizeof(err));
    eip_multi *m = eip_multi_new(&cfg, err, sizeof(err));
    const eip_http_response *resp = NULL;
    int c, n, session_n = 1, multi_n = 1, slot, seen = 0, early = 0, i;
    char b;
    CHECK(h != NULL && m != NULL, "a session and a multi: %s", err);
    if (h == NULL || m == NULL)
        return;
    session_get(h, "/parent", &parent_session_conn, &n);
    CHECK(parent_session_conn > 0 && n == 1, "the parent's session: %d#%d", parent_session_conn, n);
    session_fd = client_fd(-1);
    multi_get(m, "/parent-multi", &parent_multi_conn, &n);
    CHECK(parent_multi_conn > 0 && parent_multi_conn != parent_session_conn && n == 1, "the parent's multi: %d#%d",
          parent_multi_conn, n);
    multi_fd = client_fd(session_fd);
    CHECK(session_fd >= 0 && multi_fd >= 0, "the parent's two connections here: fds %d and %d", session_fd, multi_fd);
    if (session_fd < 0 || multi_fd < 0)
        return;

    in_child("holds nothing", child_holds_nothing, h, m);
    parent_still_served(h, m, &session_n, &multi_n, "a child that held nothing");
    in_child("sends", child_sends, h, m);
    parent_still_served(h, m, &session_n, &multi_n, "a child that sent");
    in_child("frees", child_frees, h, m);
    parent_still_served(h, m, &session_n, &multi_n, "a child that freed");
    in_child("reuses the numbers", child_reuses_numbers, h, m);
    parent_still_served(h, m, &session_n, &multi_n, "a child that reused the numbers");
    in_child("reuses the numbers, then frees", child_reuses_then_frees, h, m);
    parent_still_served(h, m, &session_n, &multi_n, "a child that reused the numbers and freed");
    in_child("forks again", child_forks_again, h, m);
    parent_still_served(h, m, &session_n, &multi_n, "a child that forked again");

    /* A transfer in flight at the fork: sent, and held by the server until the child is done. */
    slot = multi_start(m, "/held");
    CHECK(slot >= 0, "a held request started");
    if (slot < 0)
        return;
    for (i = 0; i < 1000 && !seen && !early; i++) { /* 10 s at most */
        early = eip_multi_next(m, 10, &resp) >= 0;
        seen = readable(held_seen[0], 0) && read(held_seen[0], &b, 1) == 1;
    }
    CHECK(!early, "no answer while the server holds it: curl %d", resp ? resp->curl_code : -1);
    CHECK(seen, "the server has the held request (after %d turns)", i);
    if (!seen)
        return;
    in_child("collects", child_collects, h, m);
    CHECK(write(held_release[1], "r", 1) == 1, "the held request released");
    CHECK(eip_multi_next(m, 10000, &resp) == slot && resp != NULL, "the parent's held answer");
    if (resp != NULL) {
        numbers(resp, "/held", &c, &n);
        CHECK(c == parent_multi_conn && n == ++multi_n, "the parent's held answer, on its connection: %d#%d (want %d#%d)",
              c, n, parent_multi_conn, multi_n);
    }
    parent_still_served(h, m, &session_n, &multi_n, "a child forked during a transfer");

    eip_http_free(h);
    eip_multi_free(m);
}

int main(void)
{
    pthread_t th;
    int served;
    alarm(TEST_SECONDS); /* a hang anywhere ends the test (the runner counts it as a crash) */
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
