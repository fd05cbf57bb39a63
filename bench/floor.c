/* floor.c - the benchmark's floor: bare libcurl, one reused easy handle, N DELETEs.
 *
 *   floor URL_PREFIX N      (URL_PREFIX + "<i>" is each request's URL)
 *
 * Sends the same headers lua-eip sends with token auth, so the only difference to
 * client:delete_bandwidth is the Lua and binding work. Prints one line:
 *   requests=N seconds=S cpu=S rss_kib=K failed=F
 * (cpu: user+system CPU time of the loop; rss_kib: VmHWM, the peak resident set).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define URL_MAX 512

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

static struct curl_slist *headers(void)
{
    static const char *const lines[] = {
        "Content-Type: application/json", "Accept: application/json",
        "X-Auth-Token: bench-token-0123456789abcdef", "Expect:",
    };
    struct curl_slist *list = NULL, *next;
    size_t i;
    for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        next = curl_slist_append(list, lines[i]);
        if (next == NULL) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = next;
    }
    return list;
}

/* The loop being measured: per request, only what must change (the URL) is set. */
static long run(CURL *c, const char *prefix, long n)
{
    char url[URL_MAX];
    long i, status, failed = 0;
    for (i = 0; i < n; i++) {
        snprintf(url, sizeof(url), "%s%ld", prefix, i);
        curl_easy_setopt(c, CURLOPT_URL, url);
        status = 0;
        if (curl_easy_perform(c) != CURLE_OK ||
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 204)
            failed++;
    }
    return failed;
}

int main(int argc, char **argv)
{
    CURL *c;
    struct curl_slist *list;
    long n, failed;
    double t0, c0;
    if (argc != 3 || (n = strtol(argv[2], NULL, 10)) <= 0 || strlen(argv[1]) > URL_MAX - 24) {
        fprintf(stderr, "usage: floor URL_PREFIX N\n");
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (c = curl_easy_init()) == NULL)
        return 1;
    list = headers();
    if (list == NULL) {
        curl_easy_cleanup(c);
        return 1;
    }
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "lua-eip-bench/floor");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    t0 = now(CLOCK_MONOTONIC);
    c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    failed = run(c, argv[1], n);
    printf("requests=%ld seconds=%.6f cpu=%.6f rss_kib=%ld failed=%ld\n", n, now(CLOCK_MONOTONIC) - t0,
           now(CLOCK_PROCESS_CPUTIME_ID) - c0, peak_rss_kib(), failed);
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    curl_global_cleanup();
    return failed == 0 ? 0 : 1;
}
