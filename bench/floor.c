/* floor.c - the benchmark's floor: bare libcurl, one reused easy handle, N DELETEs.
 *
 *   floor URL_PREFIX N [CA_FILE]    (URL_PREFIX + "<i>" is each request's URL)
 *   floor URL_PREFIX - [CA_FILE]    (in slices: see below)
 *
 * With FLOOR_SIGNED=1 in the environment, the header lines of lua-eip's AK/SK signed request
 * (X-Sdk-Date, X-Project-Id, Authorization) replace X-Auth-Token, with fixed values: what
 * libcurl itself costs to send a signed request, the signing aside.
 * Sends the same headers lua-eip sends with token auth (its User-Agent too), and drives libcurl
 * as lua-eip's C core does: the URL parsed once into a URL handle (CURLOPT_CURLU), each request
 * replacing only its path (a URL string parsed per request costs libcurl ~17k instructions
 * more, which lua-eip does not spend): the difference to client:delete_bandwidth is the Lua and
 * binding work. (FLOOR_URL_STRING=1: the URL string set per request instead, what a plain
 * libcurl program does.) With CA_FILE (an https URL_PREFIX), the
 * TLS floor: the server is verified as lua-eip verifies it with `ca_file` (peer and host, that
 * PEM bundle as the trust store), and the one connection is kept for every request. Prints
 * one line:
 *   requests=N seconds=S cpu=S rss_kib=K failed=F connects=C
 * (cpu: user+system CPU time of the loop; rss_kib: VmHWM, the peak resident set; connects:
 * connections libcurl opened, CURLINFO_NUM_CONNECTS summed over the requests).
 * With "-" for N it runs in slices: each line read from standard input is a count K, and it sends
 * the next K requests (the ids going on from the last slice's, round N_CYCLE) on the same handle
 * and connection, then prints that line for those K and flushes; it ends at the end of its
 * input. bench/run.lua runs the floor and the rows compared with it so, their slices taking
 * turns, so that each ratio is of runs a fraction of a second apart (its "paired" rows).
 */
#include "../src/version.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define URL_MAX 512
#define N_CYCLE 20000 /* the slices' ids: 0 .. N_CYCLE - 1, then 0 again (BENCH_N's default) */
#define COUNT_LINE_MAX 64

static size_t discard(char *data, size_t size, size_t n, void *ud)
{
    (void)data;
    (void)ud;
    return size * n;
}

static double now(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Peak resident set size in KiB, from /proc/self/status; -1 when unreadable. */
static long peak_rss_kib(void)
{
    char line[256];
    long kib = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static struct curl_slist *headers(int is_signed)
{
    static const char *const token[] = {
        "Content-Type: application/json", "Accept: application/json",
        "X-Auth-Token: bench-token-0123456789abcdef", "Expect:", NULL,
    };
    /* As bench/worker.lua's seq-aksk client sends them (its AK, a signature's length). */
    static const char *const signed_lines[] = {
        "Content-Type: application/json", "Accept: application/json", "X-Sdk-Date: 20261202T062036Z",
        "X-Project-Id: 0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "Authorization: SDK-HMAC-SHA256 Access=AKBENCH000000000000, SignedHeaders=content-type;host;x-project-id;"
        "x-sdk-date, Signature=1c016ecee7f17ddd6ca619d400749fe43b8d14fea0fd43fe9ed95f665e7aaf0a",
        "Expect:", NULL,
    };
    const char *const *lines = is_signed ? signed_lines : token;
    struct curl_slist *list = NULL, *next;
    size_t i;
    for (i = 0; lines[i] != NULL; i++) {
        next = curl_slist_append(list, lines[i]);
        if (next == NULL) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = next;
    }
    return list;
}

/* The loop being measured: per request, only what must change (the URL) is set. With a URL
 * handle `u` (the prefix parsed into it, its path prefix `path`), only its path is replaced, as
 * src/http.c's set_url_parts does (the string too: libcurl reports it). */
static long run(CURL *c, CURLU *u, const char *prefix, const char *path, long first, long n, long *connects)
{
    char url[URL_MAX], part[URL_MAX];
    long i, status, opened, failed = 0;
    for (i = first; i < first + n; i++) {
        snprintf(url, sizeof(url), "%s%ld", prefix, i);
        if (u != NULL) {
            snprintf(part, sizeof(part), "%s%ld", path, i);
            if (curl_url_set(u, CURLUPART_PATH, part, 0) != CURLUE_OK) {
                failed++;
                continue;
            }
        }
        curl_easy_setopt(c, CURLOPT_URL, url);
        status = 0;
        if (curl_easy_perform(c) != CURLE_OK ||
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 204)
            failed++;
        opened = 0;
        if (curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &opened) == CURLE_OK)
            *connects += opened;
    }
    return failed;
}

/* The line of one run (or slice) of n requests. */
static void report(long n, double seconds, double cpu, long failed, long connects)
{
    printf("requests=%ld seconds=%.6f cpu=%.6f rss_kib=%ld failed=%ld connects=%ld\n", n, seconds, cpu,
           peak_rss_kib(), failed, connects);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    CURL *c;
    CURLU *u = NULL;
    char *path = NULL;
    struct curl_slist *list;
    const char *signed_env, *string_env, *agent;
    long n, failed, connects = 0;
    double t0, c0;
    if (argc < 3 || argc > 4 || ((n = strtol(argv[2], NULL, 10)) <= 0 && strcmp(argv[2], "-") != 0) ||
        strlen(argv[1]) > URL_MAX - 24) {
        fprintf(stderr, "usage: floor URL_PREFIX N|- [CA_FILE]\n");
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (c = curl_easy_init()) == NULL)
        return 1;
    signed_env = getenv("FLOOR_SIGNED");
    list = headers(signed_env != NULL && strcmp(signed_env, "1") == 0);
    if (list == NULL) {
        curl_easy_cleanup(c);
        return 1;
    }
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    agent = getenv("FLOOR_USER_AGENT");
    curl_easy_setopt(c, CURLOPT_USERAGENT, agent != NULL ? agent : "lua-eip/" EIP_VERSION); /* lua-eip's */
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1); /* as lua-eip asks */
    string_env = getenv("FLOOR_URL_STRING");
    if (string_env == NULL || strcmp(string_env, "1") != 0) {
        if ((u = curl_url()) == NULL || curl_url_set(u, CURLUPART_URL, argv[1], 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
            fprintf(stderr, "floor: cannot parse %s\n", argv[1]);
            return 1;
        }
        curl_easy_setopt(c, CURLOPT_CURLU, u);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    if (argc == 4) { /* verification on, as libcurl's defaults, and this CA as the trust store */
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
        curl_easy_setopt(c, CURLOPT_CAINFO, argv[3]);
        curl_easy_setopt(c, CURLOPT_CAPATH, NULL); /* the CA alone, as the client's ca_file */
    }
    if (strcmp(argv[2], "-") == 0) { /* in slices */
        char line[COUNT_LINE_MAX];
        long next = 0;
        failed = 0;
        while (fgets(line, sizeof(line), stdin) != NULL && (n = strtol(line, NULL, 10)) > 0) {
            long slice_failed;
            connects = 0;
            t0 = now(CLOCK_MONOTONIC);
            c0 = now(CLOCK_PROCESS_CPUTIME_ID);
            slice_failed = run(c, u, argv[1], path, next, n, &connects);
            report(n, now(CLOCK_MONOTONIC) - t0, now(CLOCK_PROCESS_CPUTIME_ID) - c0, slice_failed, connects);
            failed += slice_failed;
            next = (next + n) % N_CYCLE;
        }
    } else {
        t0 = now(CLOCK_MONOTONIC);
        c0 = now(CLOCK_PROCESS_CPUTIME_ID);
        failed = run(c, u, argv[1], path, 0, n, &connects);
        report(n, now(CLOCK_MONOTONIC) - t0, now(CLOCK_PROCESS_CPUTIME_ID) - c0, failed, connects);
    }
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    curl_free(path);
    curl_url_cleanup(u);
    curl_global_cleanup();
    return failed == 0 ? 0 : 1;
}
