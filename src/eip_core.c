/* eip_core.c - the Lua binding of lua-eip's C core (module "eip.core").
 *
 * Only argument checking and conversion between Lua tables and C structs lives here;
 * the work is in http.c (libcurl exchange), status.c (the status table) and codes.c (the
 * error-code table).
 *
 * Numbers. C leaves a double -> integer conversion undefined when the value, NaN included,
 * does not fit the target type, and a Lua number can be anything (1e300, -inf, 0/0). So every
 * number is compared against its range before it is converted, the comparison written so
 * that NaN fails it, and the bounds chosen to be exactly representable doubles that fit the
 * target type on every platform (never (double)LONG_MAX, which rounds up past it). Out of
 * range is a Lua error naming the argument, except for these documented clamps:
 *   core.status(code)       a code outside -1e6..1e6 (or NaN) is looked up as -1: "unknown"
 *   core.error_code(c, s)   a status that is not an integer in 1..999 (NaN included) is as if
 *                           none was given: the code's first row
 *   core.sleep(s)           s <= 0 or NaN: no wait; above a day (inf included): a day
 *   timeout, connect_timeout (request fields)   below 1 ms: 1 ms; above a year: a year
 *   multi:next(timeout)     <= 0 or NaN: only what is ready now; above a day: a day
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "codes.h"
#include "compat.h"
#include "http.h"
#include "interrupt.h"
#include "multi.h"
#include "pin.h"
#include "secrets.h"
#include "sign.h"
#include "status.h"
#include "version.h"

#define SESSION_MT "eip.core.session"
#define MAX_HEADERS EIP_HTTP_MAX_HEADERS
#define MAX_SIGN_PAIRS 256
#define SMALL_SIGN_PAIRS 16

/* A session or a multi in use by one of its methods (`busy`) is not freed by a close() that a
 * finaliser calls meanwhile (Lua code runs in a finaliser at any allocation: the answer being
 * built would be read from freed buffers): the close is recorded (`closing`: closed for every
 * later call) and carried out as the method ends, or by the collector. A method that raises
 * (out of memory) leaves it to the collector. */
typedef struct {
    eip_http *http;
    int busy, closing;
} session;

/* ---- small table helpers ---------------------------------------------------------- */

static void set_str(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, long v)
{
    eip_pushint(L, v);
    lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, int v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

/* Tables the core reads are read raw (no __index, no Lua code run in the middle), and every
 * string or table it keeps a pointer into stays on the stack until the call returns: a value
 * an __index function made would be referenced by nothing, and a finaliser run by an
 * allocation could replace a field and leave the string it held to the collector. */

/* The field names session:request, multi:start and multi:next read and write, interned once:
 * upvalues of those functions (see luaopen_eip_core), so that a request reads and writes its
 * fields without hashing and looking up each name again (lua_pushstring, lua_setfield). */
enum {
    K_NONE,
    K_METHOD, K_URL, K_BODY, K_HEADERS, K_TIMEOUT, K_CONNECT_TIMEOUT, K_LOW_SPEED_TIME, K_LOW_SPEED_LIMIT,
    K_BODY_CAP, K_PROXY, K_STATUS, K_REQUEST_ID, K_RETRY_AFTER, K_CONTENT_TYPE, K_LOCATION, K_DATE,
    K_SUBJECT_TOKEN, K_TRUNCATED, K_ELAPSED, K_NEW_CONNECTIONS, K_CURL_CODE, K_CURL_ERROR, K_PROXY_STATUS,
    K_RESENT, K_INTERRUPTED,
    K_UNSENT,
    K_CALLER_AWAY,
    K_HELD_BACK,
    K_NO_RESEND,
    K_OWN_MT, /* not a name: the metatable of the methods' own type (see own_udata) */
    K_COUNT
};
static const char *const key_names[K_COUNT] = {
    NULL,
    "method", "url", "body", "headers", "timeout", "connect_timeout", "low_speed_time", "low_speed_limit",
    "body_cap", "proxy", "status", "request_id", "retry_after", "content_type", "location", "date",
    "subject_token", "truncated", "elapsed", "new_connections", "curl_code", "curl_error", "proxy_status",
    "resent", "interrupted", "unsent", "caller_away", "held_back", "no_resend", NULL,
};

/* Pushes the interned name `key` (a function with the key upvalues only), or k. */
static void push_key(lua_State *L, int key, const char *k)
{
    if (key != K_NONE)
        lua_pushvalue(L, lua_upvalueindex(key));
    else
        lua_pushstring(L, k);
}

/* Pushes t[k] (t an absolute index), read raw; returns its type. key: K_NONE, or the interned
 * name of k (see key_names). */
static int raw_field_k(lua_State *L, int t, const char *k, int key)
{
    push_key(L, key, k);
    lua_rawget(L, t);
    return lua_type(L, -1);
}
#define raw_field(L, t, k) raw_field_k((L), (t), (k), K_NONE)

/* Optional string field of the table at index t (absolute), read raw and LEFT ON THE STACK
 * (nil when absent), so that the pointer returned stays valid for the whole call; raises
 * naming the field when mistyped. */
static const char *opt_str_field_k(lua_State *L, int t, const char *k, int key, size_t *len)
{
    int type = raw_field_k(L, t, k, key);
    if (type == LUA_TNIL)
        return NULL;
    if (type != LUA_TSTRING)
        luaL_error(L, "eip.core: field '%s' must be a string", k);
    return lua_tolstring(L, -1, len);
}
#define opt_str_field(L, t, k, len) opt_str_field_k((L), (t), (k), K_NONE, (len))
#define opt_str_key(L, t, key, len) opt_str_field_k((L), (t), key_names[key], (key), (len))

static lua_Number opt_num_field(lua_State *L, int t, int key, lua_Number dflt)
{
    const char *k = key_names[key];
    lua_Number v = dflt;
    int type = raw_field_k(L, t, k, key);
    if (type != LUA_TNIL) {
        if (type != LUA_TNUMBER)
            luaL_error(L, "eip.core: field '%s' must be a number", k);
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* Optional number field in [lo, hi] (NaN never is); raises naming the field and the range,
 * written out by the caller as `range` (lua_pushfstring has no format for large numbers). */
static lua_Number opt_num_field_in(lua_State *L, int t, int key, lua_Number dflt,
                                   lua_Number lo, lua_Number hi, const char *range)
{
    lua_Number v = opt_num_field(L, t, key, dflt);
    if (!(v >= lo && v <= hi))
        luaL_error(L, "eip.core: field '%s' must be a number in %s", key_names[key], range);
    return v;
}

/* ---- status table ----------------------------------------------------------------- */

/* The entry's facts only: eip.status() adds `retryable` from the Lua retry policy, the one
 * place that decides it. */
static void push_status(lua_State *L, const eip_status_info *s)
{
    char seeds[32];
    lua_createtable(L, 0, 9);
    set_int(L, "code", s->code);
    set_str(L, "reason", s->reason);
    if (s->seed_name != NULL)
        set_str(L, "seed_name", s->seed_name);
    set_str(L, "description", s->description);
    set_str(L, "description_zh", s->description_zh ? s->description_zh : "");
    set_str(L, "class", eip_status_class_name(s->klass));
    set_str(L, "advice", s->advice);
    set_str(L, "seeds", eip_status_seeds_string(s->seeds, seeds, sizeof(seeds)));
    set_bool(L, "documented", s->seeds != 0);
}

static int l_status(lua_State *L)
{
    eip_status_info scratch;
    lua_Number n = luaL_checknumber(L, 1);
    /* Documented clamp: no status is far from 100..599, so anything beyond +-1e6 (NaN and the
     * infinities included) is asked for as -1, an "unknown" entry, not converted. The range is
     * checked before the conversion: a double beyond INT_MAX cast to int is undefined. eip.status
     * (lua/eip/init.lua) refuses what this clamps, so its entry's code is the one asked for. */
    int code = (n >= -1e6 && n <= 1e6) ? (int)n : -1;
    push_status(L, eip_status_lookup(code, &scratch));
    return 1;
}

static int l_statuses(lua_State *L)
{
    size_t i, n = eip_status_count();
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        push_status(L, eip_status_at(i));
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

/* ---- error-code table ------------------------------------------------------------- */

/* One row's fields, into the table on top of the stack. */
static void set_code_row(lua_State *L, const eip_code_info *r)
{
    set_int(L, "status", r->status);
    set_str(L, "module", r->module);
    set_str(L, "message", r->message);
    set_str(L, "description_zh", r->description_zh);
    set_str(L, "handling_zh", r->handling_zh);
    set_str(L, "advice", r->advice);
    set_str(L, "kind", eip_code_kind_name(r->kind));
    set_bool(L, "transient", r->transient);
}

/* An entry: the best row's fields and code, and `variants`, every row of the code (n rows
 * from `rows`, the best one included) in table order. */
static void push_code_entry(lua_State *L, const eip_code_info *best, const eip_code_info *rows,
                            size_t n)
{
    size_t i;
    lua_createtable(L, 0, 10);
    set_str(L, "code", best->code);
    set_code_row(L, best);
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        lua_createtable(L, 0, 8);
        set_code_row(L, &rows[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "variants");
}

/* core.error_code(code [, status]) -> entry, or nil for a code in no row. */
static int l_error_code(lua_State *L)
{
    size_t len, n;
    const char *code = luaL_checklstring(L, 1, &len);
    lua_Number s = luaL_optnumber(L, 2, 0);
    const eip_code_info *rows;
    /* Documented clamp: only an integer in 1..999 is a status to match; the range is checked
     * before the conversion (NaN fails it), the integrality after. */
    int status = (s >= 1 && s <= 999) ? (int)s : 0;

    if ((lua_Number)status != s)
        status = 0;
    rows = eip_code_rows(code, len, &n);
    if (!rows) {
        lua_pushnil(L);
        return 1;
    }
    push_code_entry(L, eip_code_lookup(code, len, status), rows, n);
    return 1;
}

/* core.error_codes() -> one entry per code (its first row, and its variants), in table order. */
static int l_error_codes(lua_State *L)
{
    size_t i = 0, k = 0, count = eip_code_count();
    lua_newtable(L);
    while (i < count) {
        const eip_code_info *first = eip_code_at(i);
        size_t n = 0;
        const eip_code_info *rows = eip_code_rows(first->code, strlen(first->code), &n);
        if (rows != first || n == 0) /* cannot happen: rows of a code are adjacent */
            return luaL_error(L, "eip.core: error-code table out of order at %s", first->code);
        push_code_entry(L, first, rows, n);
        lua_rawseti(L, -2, (int)++k);
        i += n;
    }
    return 1;
}

/* ---- signing ------------------------------------------------------------------------- */

/* The length of the list at t[k], read raw (0 when absent; not a table is reported by
 * collect_pairs). */
static size_t list_length(lua_State *L, int t, const char *k)
{
    size_t n;
    n = raw_field(L, t, k) == LUA_TTABLE ? lua_rawlen(L, -1) : 0;
    lua_pop(L, 1);
    return n;
}

/* The {name, value} pair on top of the stack into *kv (its strings stay referenced by the
 * pair table, which the caller keeps on the stack). Raises naming list[i] when it is not one. */
static void read_pair(lua_State *L, const char *list, size_t i, eip_kv *kv)
{
    if (!lua_istable(L, -1))
        luaL_error(L, "eip.core: %s[%d] must be a {name, value} pair", list, (int)i + 1);
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "eip.core: %s[%d] must hold two strings", list, (int)i + 1);
    kv->name = lua_tolstring(L, -2, &kv->name_len);
    kv->value = lua_tolstring(L, -1, &kv->value_len);
    lua_pop(L, 2);
}

/* Reads the list of {name, value} pairs at stack index idx (absolute; nil: none) into kv, at
 * most max. Each pair table is left on the stack (n values), so its strings outlive the call. */
static size_t collect_list(lua_State *L, int idx, const char *list, eip_kv *kv, size_t max)
{
    size_t i, n;
    if (lua_isnil(L, idx))
        return 0;
    if (!lua_istable(L, idx))
        luaL_error(L, "eip.core: field '%s' must be a list of {name, value} pairs", list);
    n = lua_rawlen(L, idx);
    if (n > max)
        luaL_error(L, "eip.core: too many entries in '%s' (at most %d)", list, (int)max);
    luaL_checkstack(L, (int)n + 4, "eip.core: too many pairs");
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, idx, (int)i + 1);
        read_pair(L, list, i, &kv[i]); /* the pair table stays on the stack */
    }
    return n;
}

/* Reads a list of {name, value} pairs at t[k] (raw) into kv; the list and its pairs are left
 * on the stack. */
static size_t collect_pairs(lua_State *L, int t, const char *k, eip_kv *kv, size_t max)
{
    raw_field(L, t, k);
    return collect_list(L, lua_gettop(L), k, kv, max);
}

/* The two output buffers of core.sign, owned by a userdata. */
typedef struct {
    eip_buf auth, canon;
} sign_bufs;

static void sign_bufs_free(sign_bufs *b)
{
    eip_buf_free(&b->auth);
    eip_buf_free(&b->canon);
}

static int sign_bufs_gc(lua_State *L)
{
    sign_bufs_free(lua_touserdata(L, 1));
    return 0;
}

/* core.sign{ method=, path=, query={{k,v}...}, headers={{name,value}...}, body=, ak=, sk= }
 *   -> authorization, canonical_request
 * On bad input raises an error whose text is a static message from sign.c (never the SK). */
static int l_sign(lua_State *L)
{
    eip_kv small[SMALL_SIGN_PAIRS], *pairs;
    size_t nq, nh;
    eip_sign_input in;
    sign_bufs *bufs;
    const char *err = NULL;
    eip_sign_status st;
    luaL_checktype(L, 1, LUA_TTABLE);
    memset(&in, 0, sizeof(in));
    in.method = opt_str_field(L, 1, "method", NULL);
    in.path = opt_str_field(L, 1, "path", &in.path_len);
    in.ak = opt_str_field(L, 1, "ak", &in.ak_len);
    in.sk = opt_str_field(L, 1, "sk", &in.sk_len);
    in.body = opt_str_field(L, 1, "body", &in.body_len);
    luaL_argcheck(L, in.method && in.path && in.ak && in.sk, 1, "method, path, ak and sk are required");
    /* A small request (the usual case: a few headers, no query) uses the stack; otherwise one
     * userdata block for both lists, freed by the GC even if an error is raised below. */
    nq = list_length(L, 1, "query");
    nh = list_length(L, 1, "headers");
    luaL_argcheck(L, nq <= MAX_SIGN_PAIRS && nh <= MAX_SIGN_PAIRS, 1, "too many headers or query parameters");
    pairs = nq + nh <= SMALL_SIGN_PAIRS ? small : lua_newuserdata(L, sizeof(eip_kv) * (nq + nh));
    in.query = pairs;
    in.nquery = collect_pairs(L, 1, "query", pairs, nq);
    in.headers = pairs + nq;
    in.nheaders = collect_pairs(L, 1, "headers", pairs + nq, nh);
    /* The outputs live in a userdata whose __gc frees them: pushing them as strings may raise
     * (memory), which must not leak them. */
    bufs = lua_newuserdata(L, sizeof(*bufs));
    eip_buf_init(&bufs->auth, 0);
    eip_buf_init(&bufs->canon, 0);
    if (luaL_newmetatable(L, "eip.sign_bufs")) {
        lua_pushcfunction(L, sign_bufs_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    st = eip_sign(&in, &bufs->auth, &bufs->canon, &err);
    if (st != EIP_SIGN_OK) {
        sign_bufs_free(bufs);
        return luaL_error(L, "eip.core: cannot sign: %s", err ? err : "unknown error");
    }
    lua_pushlstring(L, bufs->auth.data, bufs->auth.len);
    lua_pushlstring(L, bufs->canon.data, bufs->canon.len);
    sign_bufs_free(bufs); /* now, not at the next collection */
    return 2;
}

/* The X-Sdk-Date format has a 4-digit year and no sign: 1970-01-01T00:00:00Z at the earliest
 * (a signed request is never dated before the epoch), 9999-12-31T23:59:59Z at the latest. */
#define SDK_DATE_MAX 253402300799.0

/* ---- signer: one AK/SK pair signing every request of a client --------------------------- *
 *
 * core.signer(ak, sk [, security_token]) -> signer
 *   signer:headers(method, path, query, body, host, project_id, headers [, now])
 *     -> the request's header lines, signed: each entry of `headers` ({name, value, line =
 *        "Name: value"?, signed = false?}: sent in order, signed unless signed == false), then
 *        "Host: <host>", "X-Sdk-Date: <now>", "X-Project-Id: <project_id>" (when given),
 *        "X-Security-Token: <token>" (temporary keys) and "Authorization: SDK-HMAC-SHA256 ...".
 *        path: as sent, not yet percent-encoded; query: {name, value} pairs or nil; body: a
 *        string or nil; now: Unix seconds (default: the clock, read at every call, so a retried
 *        request carries a fresh date). Raises "eip.core: cannot sign: <why>" (never a key).
 * Everything a client's requests share is made once: the HMAC key (src/sign.c's eip_signer),
 * the date of the current second, and the lines of the host, the project and the security
 * token, which are kept as Lua strings until the value changes. */

#define SIGNER_MT "eip.core.signer"
#define SIGN_HEADERS_MAX 64 /* entries of `headers`: the transport takes at most MAX_HEADERS lines */

typedef struct {
    eip_signer *signer;
    /* Registry references (LUA_NOREF: none yet): the value each cached line was made from, and
     * the line. The security token's are set once. */
    int host_ref, host_line_ref, project_ref, project_line_ref, token_ref, token_line_ref;
    int date_line_ref;     /* date_line as a Lua string */
    long long date_second; /* the second date_line is for; -1: none yet */
    char date_line[sizeof("X-Sdk-Date: ") + 16];
} signer_ud;

#define DATE_PREFIX_LEN (sizeof("X-Sdk-Date: ") - 1)

static signer_ud *check_signer(lua_State *L)
{
    signer_ud *u = luaL_checkudata(L, 1, SIGNER_MT);
    if (u->signer == NULL)
        luaL_error(L, "eip.core: signer is closed");
    return u;
}

static void unref(lua_State *L, int *ref)
{
    luaL_unref(L, LUA_REGISTRYINDEX, *ref);
    *ref = LUA_NOREF;
}

static int l_signer_gc(lua_State *L)
{
    signer_ud *u = luaL_checkudata(L, 1, SIGNER_MT);
    eip_signer_free(u->signer);
    u->signer = NULL;
    unref(L, &u->host_ref);
    unref(L, &u->host_line_ref);
    unref(L, &u->project_ref);
    unref(L, &u->project_line_ref);
    unref(L, &u->token_ref);
    unref(L, &u->token_line_ref);
    unref(L, &u->date_line_ref);
    return 0;
}

static int l_signer_tostring(lua_State *L)
{
    signer_ud *u = luaL_checkudata(L, 1, SIGNER_MT);
    lua_pushstring(L, u->signer ? "eip.core.signer" : "eip.core.signer (closed)");
    return 1;
}

/* prefix .. the string at idx, as a new string on the stack (embedded NULs kept). */
static void push_line(lua_State *L, const char *prefix, int idx)
{
    lua_pushstring(L, prefix);
    lua_pushvalue(L, idx);
    lua_concat(L, 2);
}

/* The line for the string at idx (prefix .. value), pushed: the cached one while the value is
 * the one it was made from, else a new one, which is cached instead. */
static void push_cached_line(lua_State *L, int idx, const char *prefix, int *value_ref, int *line_ref)
{
    int same;
    lua_rawgeti(L, LUA_REGISTRYINDEX, *value_ref);
    same = lua_rawequal(L, -1, idx);
    lua_pop(L, 1);
    if (same) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, *line_ref);
        return;
    }
    /* The line first, the value it was made from last: when an allocation fails (and raises)
     * in between, no value is cached, and the next call makes the line again. */
    unref(L, value_ref);
    unref(L, line_ref);
    push_line(L, prefix, idx);
    lua_pushvalue(L, -1);
    *line_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, idx);
    *value_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

static int l_signer(lua_State *L)
{
    size_t ak_len, sk_len;
    const char *ak = luaL_checklstring(L, 1, &ak_len);
    const char *sk = luaL_checklstring(L, 2, &sk_len);
    const char *err = NULL;
    signer_ud *u;
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TSTRING);
    u = lua_newuserdata(L, sizeof(*u));
    memset(u, 0, sizeof(*u));
    u->host_ref = u->host_line_ref = u->project_ref = u->project_line_ref = LUA_NOREF;
    u->token_ref = u->token_line_ref = u->date_line_ref = LUA_NOREF;
    u->date_second = -1;
    memcpy(u->date_line, "X-Sdk-Date: ", DATE_PREFIX_LEN);
    eip_setmetatable(L, SIGNER_MT);
    u->signer = eip_signer_new(ak, ak_len, sk, sk_len, &err);
    if (u->signer == NULL)
        return luaL_error(L, "eip.core: cannot sign: %s", err ? err : "unknown error");
    if (lua_type(L, 3) == LUA_TSTRING) {
        lua_pushvalue(L, 3);
        u->token_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        push_line(L, "X-Security-Token: ", 3);
        u->token_line_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    return 1;
}

/* The value of the string at idx as a kv named name. */
/* kv = name: value (len bytes). */
static void set_kv(eip_kv *kv, const char *name, const char *value, size_t len)
{
    kv->name = name;
    kv->name_len = strlen(name);
    kv->value = value;
    kv->value_len = len;
}

static void kv_of(lua_State *L, int idx, const char *name, eip_kv *kv)
{
    size_t len;
    const char *v = lua_tolstring(L, idx, &len);
    set_kv(kv, name, v, len);
}

/* u's date line for `second` (u->date_line, and as a Lua string), formatted once per second:
 * what signer:headers and a signed prepared request send. */
static void signer_date(lua_State *L, signer_ud *u, long long second)
{
    if (second == u->date_second)
        return;
    u->date_second = -1; /* until the line is made (an allocation may raise) */
    eip_sign_format_date(second, u->date_line + DATE_PREFIX_LEN);
    unref(L, &u->date_line_ref);
    lua_pushlstring(L, u->date_line, DATE_PREFIX_LEN + 16);
    u->date_line_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    u->date_second = second;
}

static int l_signer_headers(lua_State *L)
{
    enum { A_METHOD = 2, A_PATH, A_QUERY, A_BODY, A_HOST, A_PROJECT, A_HEADERS, A_NOW };
    eip_kv small[SMALL_SIGN_PAIRS], *pairs, *hdr;
    signer_ud *u = check_signer(L);
    eip_sign_input in;
    size_t i, nq, nentries, nh = 0, auth_len = 0;
    const char *auth = NULL, *err = NULL;
    int out, top, n = 0, has_project;
    long long second;
    lua_Number now;
    eip_sign_status st;

    memset(&in, 0, sizeof(in));
    in.method = luaL_checkstring(L, A_METHOD);
    in.path = luaL_checklstring(L, A_PATH, &in.path_len);
    if (!lua_isnoneornil(L, A_BODY))
        in.body = luaL_checklstring(L, A_BODY, &in.body_len);
    luaL_checktype(L, A_HOST, LUA_TSTRING);
    has_project = !lua_isnoneornil(L, A_PROJECT);
    if (has_project)
        luaL_checktype(L, A_PROJECT, LUA_TSTRING);
    luaL_checktype(L, A_HEADERS, LUA_TTABLE);
    now = luaL_optnumber(L, A_NOW, (lua_Number)time(NULL));
    luaL_argcheck(L, now >= 0 && now < SDK_DATE_MAX + 1, A_NOW,
                  "seconds must be in 0..253402300799 (1970 to 9999 UTC)");
    second = (long long)now; /* in range (NaN fails the check): fractions are dropped */
    lua_settop(L, A_NOW);
    nq = lua_istable(L, A_QUERY) ? lua_rawlen(L, A_QUERY) : 0;
    nentries = lua_rawlen(L, A_HEADERS);
    luaL_argcheck(L, nq <= MAX_SIGN_PAIRS, A_QUERY, "too many query parameters");
    luaL_argcheck(L, nentries <= SIGN_HEADERS_MAX, A_HEADERS, "too many headers");
    /* The query, the entries, and Host, X-Sdk-Date, X-Project-Id, X-Security-Token: on the
     * stack for a usual request, else one userdata block (freed by the GC if a raise follows). */
    pairs = nq + nentries + 4 <= SMALL_SIGN_PAIRS ? small
                                                   : lua_newuserdata(L, sizeof(eip_kv) * (nq + nentries + 4));
    in.query = pairs;
    in.nquery = collect_list(L, A_QUERY, "query", pairs, nq);
    hdr = pairs + nq;
    in.headers = hdr;

    lua_createtable(L, (int)nentries + 5, 0);
    out = lua_gettop(L);
    luaL_checkstack(L, (int)nentries + 8, "eip.core: too many headers");
    for (i = 0; i < nentries; i++) {
        int is_signed, entry;
        lua_rawgeti(L, A_HEADERS, (int)i + 1);
        entry = lua_gettop(L);
        read_pair(L, "headers", i, &hdr[nh]);
        is_signed = !(raw_field(L, entry, "signed") == LUA_TBOOLEAN && !lua_toboolean(L, -1));
        if (raw_field(L, entry, "line") != LUA_TSTRING) {
            lua_pop(L, 1);
            lua_pushlstring(L, hdr[nh].name, hdr[nh].name_len);
            lua_pushliteral(L, ": ");
            lua_pushlstring(L, hdr[nh].value, hdr[nh].value_len);
            lua_concat(L, 3);
        }
        lua_rawseti(L, out, ++n);
        lua_pop(L, 1); /* signed; the entry stays on the stack, its strings signed below */
        if (is_signed)
            nh++;
    }
    top = lua_gettop(L);

    kv_of(L, A_HOST, "Host", &hdr[nh++]);
    push_cached_line(L, A_HOST, "Host: ", &u->host_ref, &u->host_line_ref);
    lua_rawseti(L, out, ++n);

    signer_date(L, u, second);
    set_kv(&hdr[nh++], "X-Sdk-Date", u->date_line + DATE_PREFIX_LEN, 16);
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->date_line_ref);
    lua_rawseti(L, out, ++n);

    if (has_project) {
        kv_of(L, A_PROJECT, "X-Project-Id", &hdr[nh++]);
        push_cached_line(L, A_PROJECT, "X-Project-Id: ", &u->project_ref, &u->project_line_ref);
        lua_rawseti(L, out, ++n);
    }
    if (u->token_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, u->token_ref); /* on the stack until signed */
        kv_of(L, -1, "X-Security-Token", &hdr[nh++]);
        lua_rawgeti(L, LUA_REGISTRYINDEX, u->token_line_ref);
        lua_rawseti(L, out, ++n);
    }
    in.nheaders = nh;
    st = eip_signer_sign(u->signer, &in, &auth, &auth_len, NULL, &err);
    if (st != EIP_SIGN_OK)
        return luaL_error(L, "eip.core: cannot sign: %s", err ? err : "unknown error");
    lua_settop(L, top);
    {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        luaL_addlstring(&b, "Authorization: ", 15);
        luaL_addlstring(&b, auth, auth_len);
        luaL_pushresult(&b);
    }
    lua_rawseti(L, out, ++n);
    lua_pushvalue(L, out);
    return 1;
}

static const luaL_Reg signer_methods[] = {
    {"headers", l_signer_headers},
    {NULL, NULL},
};

/* core.sdk_date([unix_seconds]) -> "YYYYMMDDTHHMMSSZ" (UTC; now by default). Fractions of a
 * second are dropped; a time outside 0..253402300799 is an error rather than a date that
 * would sign a request for the wrong moment. */
static int l_sdk_date(lua_State *L)
{
    char out[17];
    lua_Number n = luaL_optnumber(L, 1, (lua_Number)time(NULL));
    luaL_argcheck(L, n >= 0 && n < SDK_DATE_MAX + 1, 1,
                  "seconds must be in 0..253402300799 (1970 to 9999 UTC)");
    eip_sign_format_date((long long)n, out);
    lua_pushstring(L, out);
    return 1;
}

/* ---- text from servers ------------------------------------------------------------------ */

/* Where a scan of UTF-8 stands: the continuation bytes the last lead byte announced, and the
 * range the next one must be in (the first one's is narrower after E0, ED, F0 and F4: no
 * overlong form, no surrogate, nothing past U+10FFFF). */
typedef struct {
    int pending;
    unsigned char lo, hi;
} utf8_scan;
#define UTF8_SCAN_START {0, 0x80, 0xBF}

/* Code points a terminal shows as nothing (format characters, fillers, selectors): a server's
 * text could split a secret with them (shown whole), and bidi overrides reorder what a terminal
 * shows. They count as control characters. `joins`: one that lives inside a character or a word
 * (a variation selector after ❤, a zero-width joiner in an emoji sequence, a soft hyphen) is
 * removed where the others become spaces (core.blank_controls). */
static const struct {
    unsigned long lo, hi;
    int joins;
} INVISIBLE[] = {
    {0x00AD, 0x00AD, 1},   {0x034F, 0x034F, 1},   {0x061C, 0x061C, 0},   {0x115F, 0x1160, 0},
    {0x17B4, 0x17B5, 0},   {0x180B, 0x180F, 1},   {0x200B, 0x200D, 1},   {0x200E, 0x200F, 0},
    {0x2028, 0x202E, 0},   {0x2060, 0x2060, 1},   {0x2061, 0x2064, 0},   {0x2066, 0x206F, 0},
    {0x3164, 0x3164, 0},   {0xFE00, 0xFE0F, 1},   {0xFEFF, 0xFEFF, 1},   {0xFFA0, 0xFFA0, 0},
    {0xFFF9, 0xFFFB, 0},   {0x1D173, 0x1D17A, 0}, {0xE0000, 0xE007F, 1}, {0xE0100, 0xE01EF, 1},
};

/* The bytes of the invisible character (INVISIBLE) written in valid UTF-8 at s[i], or 0; *joins:
 * its table entry's. */
static size_t format_at(const unsigned char *s, size_t i, size_t len, int *joins)
{
    unsigned char c = s[i], lo = 0x80, hi = 0xBF;
    unsigned long cp;
    size_t n, k;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, cp = c & 0x0Fu;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, cp = c & 0x07u;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (len - i < n)
        return 0;
    for (k = 1; k < n; k++) {
        unsigned char d = s[i + k];
        if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xBF))
            return 0;
        cp = (cp << 6) | (d & 0x3Fu);
    }
    for (k = 0; k < sizeof INVISIBLE / sizeof INVISIBLE[0]; k++) {
        if (cp >= INVISIBLE[k].lo && cp <= INVISIBLE[k].hi) {
            *joins = INVISIBLE[k].joins;
            return n;
        }
    }
    return 0;
}

/* The bytes of the control character at s[i], or 0: a C0 control or DEL (1), U+0080-U+009F
 * written in UTF-8 (2: C2 80..C2 9F), a byte 0x80-0x9F that no valid lead byte announced (1), or
 * an invisible character (format_at: 2 to 4). The C1 controls include CSI (U+009B),
 * which terminals take as ESC [: a server's string could move the cursor and erase lines as ESC
 * can. *u: the scan's state (zeroed at the start). *joins (unless NULL): whether it is an
 * invisible character that joins (INVISIBLE). */
static size_t control_at(const unsigned char *s, size_t i, size_t len, utf8_scan *u, int *joins)
{
    unsigned char c = s[i];
    int j = 0;
    size_t n;
    if (u->pending > 0 && c >= u->lo && c <= u->hi) {
        u->pending--;
        u->lo = 0x80;
        u->hi = 0xBF;
        return 0;
    }
    u->pending = 0;
    if (c < 32 || c == 127)
        return 1;
    if (c == 0xC2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9F)
        return 2;
    if (c >= 0xC2 && (n = format_at(s, i, len, &j)) != 0) {
        if (joins != NULL)
            *joins = j;
        return n;
    }
    if (c >= 0x80 && c <= 0x9F)
        return 1;
    u->lo = 0x80;
    u->hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        u->pending = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        u->pending = 2;
        if (c == 0xE0)
            u->lo = 0xA0;
        else if (c == 0xED)
            u->hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        u->pending = 3;
        if (c == 0xF0)
            u->lo = 0x90;
        else if (c == 0xF4)
            u->hi = 0x8F;
    }
    return 0;
}

/* Does what follows a '&' begin a character reference: '#' (&#77;) or a letter (&amp;)? */
static int reference_at(const unsigned char *p)
{
    unsigned char c = (unsigned char)(*p | 0x20);
    return *p == '#' || (c >= 'a' && c <= 'z');
}

/* 1 for a byte that is printable ASCII and begins no escape (not '%', '\\' or '&'): what
 * servers send nearly all of, which before_controls passes over a byte at a time. */
static const unsigned char TEXT_PLAIN[256] = {
    [0x20] = 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* ' '..'/': '%' and '&' not */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* '0'..'?' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* '@'..'O' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 'P'..'_': the backslash not */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* '`'..'o' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 'p'..'~'; the rest 0 */
};

/* The length of s's start before its first control character (len: none), and in *escapes
 * whether that start holds a '%' or '\\' escape, or a character reference ("&#", or "&" and a
 * letter: &amp; &lt; &quot;). */
static size_t before_controls(const char *s, size_t len, int *escapes)
{
    size_t i;
    utf8_scan u = UTF8_SCAN_START;
    *escapes = 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (TEXT_PLAIN[c]) { /* (and a run of them, at once: it ends any sequence a lead byte announced) */
            while (i + 1 < len && TEXT_PLAIN[(unsigned char)s[i + 1]])
                i++;
            u.pending = 0;
            continue;
        }
        /* ('%', '\\' and '&', printable too: no control character, and they end any sequence
         * a lead byte announced, as control_at would say, one call per byte less) */
        if (c >= 0x20 && c < 0x7F) {
            u.pending = 0;
        } else if (control_at((const unsigned char *)s, i, len, &u, NULL) != 0) {
            break;
        }
        if (c == '%' || c == '\\' || (c == '&' && i + 1 < len && reference_at((const unsigned char *)s + i + 1)))
            *escapes = 1;
    }
    return i;
}

/* core.blank_controls(s) -> s with every control character (bytes 0-31 and 127: Lua's %c in
 * the C locale; C1; invisible ones, control_at) replaced by a space (an invisible one that joins
 * removed: INVISIBLE); s itself when it has none, which is what servers send
 * (request ids, codes, messages): checked in one pass, without a pattern match per byte.
 * Second result: whether s could hold a secret in disguise (a control character inside it,
 * a '%' escape, a '\' escape, a "&#" or named reference), so that the caller looks closer
 * only at such text. */
static int l_blank_controls(lua_State *L)
{
    size_t len, i;
    const char *s = luaL_checklstring(L, 1, &len);
    int escapes;
    luaL_Buffer b;
    i = before_controls(s, len, &escapes);
    if (i == len) {
        lua_settop(L, 1);
        lua_pushboolean(L, escapes);
        return 2;
    }
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, s, i);
    {
        utf8_scan u = UTF8_SCAN_START;
        while (i < len) {
            int joins = 0;
            size_t n = control_at((const unsigned char *)s, i, len, &u, &joins);
            if (n == 0)
                luaL_addchar(&b, s[i]);
            else if (!joins)
                luaL_addchar(&b, ' ');
            i += n != 0 ? n : 1;
        }
    }
    luaL_pushresult(&b);
    lua_pushboolean(L, 1);
    return 2;
}

/* core.escape_controls(s [, strip]) -> s with each byte of every control character (as
 * blank_controls finds them, C1 included) written as a decimal escape (ESC as \27, CSI as
 * \194\155): for messages that quote a value, whatever Lua's %q leaves raw. With strip true,
 * the control characters are removed instead (a secret split by them is looked for whole). */
static int l_escape_controls(lua_State *L)
{
    size_t len, i = 0;
    const char *s = luaL_checklstring(L, 1, &len);
    utf8_scan u = UTF8_SCAN_START;
    int strip = lua_toboolean(L, 2);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    while (i < len) {
        size_t n = control_at((const unsigned char *)s, i, len, &u, NULL), k;
        if (n == 0) {
            luaL_addchar(&b, s[i++]);
            continue;
        }
        for (k = 0; k < n && !strip; k++) {
            char esc[8];
            snprintf(esc, sizeof(esc), "\\%u", (unsigned)(unsigned char)s[i + k]);
            luaL_addstring(&b, esc);
        }
        i += n;
    }
    luaL_pushresult(&b);
    return 1;
}

/* ---- secrets: the index of eip.pipeline's redaction (see secrets.h) ------------------ */

#define SECRETS_MT "eip.core.secrets"

/* The registry's weak-keyed table: a list of secrets -> { index userdata, its strings... }. */
static char secrets_cache_key;

typedef struct {
    eip_secrets *x;
} secrets_index;

static int l_secrets_gc(lua_State *L)
{
    secrets_index *u = luaL_checkudata(L, 1, SECRETS_MT);
    eip_secrets_free(u->x);
    u->x = NULL;
    return 0;
}

/* Is the cache entry at stack index `entry` the index of the list at `list` as it is now: the
 * same strings in the same order, none added or removed? *other: whether the list holds a value
 * that is not a string (skipped by the index). */
static int secrets_current(lua_State *L, int list, int entry, int *other)
{
    int j = 2;
    lua_pushnil(L);
    while (lua_next(L, list) != 0) {
        if (lua_type(L, -1) != LUA_TSTRING) {
            *other = 1;
        } else if (lua_rawlen(L, -1) > 0) {
            int same;
            lua_rawgeti(L, entry, j++);
            same = lua_rawequal(L, -1, -2);
            lua_pop(L, 1);
            if (!same) {
                lua_pop(L, 2); /* the value and the key */
                return 0;
            }
        }
        lua_pop(L, 1);
    }
    lua_rawgeti(L, entry, j);
    j = lua_isnil(L, -1); /* nothing removed */
    lua_pop(L, 1);
    return j;
}

/* A new index of the strings of the list at `list`, in a userdata pushed on the stack (its
 * __gc frees the index). entry: 0, or the stack index of a cache entry whose [1] becomes the
 * userdata (popped from the stack then) and [2..] the strings indexed, which keeps them alive.
 * *other: whether the list holds a value that is not a string. */
static eip_secrets *secrets_build(lua_State *L, int list, int entry, int *other)
{
    int n = 0, j = 2;
    secrets_index *u;
    eip_secrets *x;
    *other = 0;
    lua_pushnil(L);
    while (lua_next(L, list) != 0) {
        n++;
        lua_pop(L, 1);
    }
    u = lua_newuserdata(L, sizeof *u);
    u->x = NULL;
    eip_setmetatable(L, SECRETS_MT);
    u->x = eip_secrets_new((size_t)n);
    if (u->x == NULL)
        luaL_error(L, "eip.core: out of memory (secrets index)");
    lua_pushnil(L);
    while (lua_next(L, list) != 0) {
        size_t len = 0;
        const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (v == NULL)
            *other = 1;
        if (v != NULL && len > 0 && eip_secrets_add(u->x, v, len) != 0)
            luaL_error(L, "eip.core: out of memory (secrets index)");
        if (v != NULL && len > 0 && entry != 0)
            lua_rawseti(L, entry, j++); /* pops the value */
        else
            lua_pop(L, 1);
    }
    x = u->x;
    if (entry != 0)
        lua_rawseti(L, entry, 1); /* pops the userdata */
    return x;
}

/* The index of the list at stack index `list` (an absolute index), made when the list is seen
 * for the first time or has changed since (a value replaced, added or removed), as the cache's
 * copy of its strings, which keeps them alive, tells. *other: whether the list holds a value
 * that is not a string.
 * A cached index that was finalised (its __gc ran: at lua_close every finaliser runs, and a
 * collection finalises an index together with a list resurrected by another finaliser) is
 * never used. Such a list gets an index for this call only, in *temp, left on the stack: the
 * caller frees it with secrets_done once done (its __gc is only the fallback when a raise comes
 * first: a userdata made while the state closes is never finalised). It is not cached, for the
 * same reason. Otherwise *temp is NULL and the stack is left as it was found. */
static eip_secrets *secrets_in(lua_State *L, int cache_at, int list, int *other, secrets_index **temp)
{
    int top = lua_gettop(L), cache, entry;
    eip_secrets *x;
    *other = 0;
    *temp = NULL;
    lua_pushvalue(L, cache_at); /* the cache (see luaopen_eip_core) */
    cache = lua_gettop(L);
    lua_pushvalue(L, list);
    lua_rawget(L, cache);
    entry = lua_gettop(L);
    if (lua_istable(L, entry) && secrets_current(L, list, entry, other)) {
        lua_rawgeti(L, entry, 1);
        x = ((secrets_index *)lua_touserdata(L, -1))->x;
        lua_settop(L, top);
        if (x != NULL)
            return x;
        x = secrets_build(L, list, 0, other); /* the stale entry stays: see above */
        *temp = lua_touserdata(L, -1);
        return x;
    }
    lua_createtable(L, 2, 0);
    entry = lua_gettop(L);
    x = secrets_build(L, list, entry, other);
    lua_pushvalue(L, list);
    lua_pushvalue(L, entry);
    lua_rawset(L, cache);
    lua_settop(L, top);
    return x;
}

/* (a function with the cache as its upvalue 1) */
#define secrets_of(L, list, other, temp) secrets_in((L), lua_upvalueindex(1), (list), (other), (temp))

/* Frees an index secrets_of made for one call (NULL: none). */
static void secrets_done(secrets_index *temp)
{
    if (temp != NULL) {
        eip_secrets_free(temp->x);
        temp->x = NULL;
    }
}

/* (secrets_of: a function with the cache as its upvalue 1 only: plain_text, secret_ranges) */

/* core.plain_text(s, secrets) -> whether eip.pipeline's Runner:clean gives s back as it is: no
 * control character, no '%' or '\' escape or character reference (before_controls), and no
 * piece of any value of the list secrets (holes allowed; what a piece is: secrets.h). A value
 * that is not a string gives false (the caller then applies its rules). One pass over s, where
 * those rules cost a request id about a microsecond. */
/* Is s plain_text's "plain" for the list at stack index `list` (the cache at cache_at)? */
static int text_plain(lua_State *L, int cache_at, const char *s, size_t len, int list)
{
    int escapes, other, plain = before_controls(s, len, &escapes) == len && !escapes;
    if (plain) {
        secrets_index *temp;
        eip_secrets *x = secrets_in(L, cache_at, list, &other, &temp);
        plain = !other && !eip_secrets_any(x, s, len);
        secrets_done(temp);
    }
    return plain;
}

static int l_plain_text(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushboolean(L, text_plain(L, lua_upvalueindex(1), s, len, 2));
    return 1;
}

/* core.secret_ranges(s, secrets) -> nil, or { from1, to1, from2, to2, ... }: the pieces of the
 * list's secrets in s (1-based, inclusive byte positions), in order, merged where they overlap
 * or touch. Values that are not strings are skipped. The pieces are counted first, then
 * written: a text with none (the usual case) costs no allocation at all, one with some only
 * their ranges. */
static int l_secret_ranges(lua_State *L)
{
    size_t len, n, i;
    const char *s = luaL_checklstring(L, 1, &len);
    int other;
    eip_secrets *x;
    eip_range *out;
    secrets_index *temp;

    luaL_checktype(L, 2, LUA_TTABLE);
    x = secrets_of(L, 2, &other, &temp);
    n = eip_secrets_scan(x, s, len, NULL);
    if (n == 0) {
        secrets_done(temp);
        lua_pushnil(L);
        return 1;
    }
    out = lua_newuserdata(L, n * sizeof *out);
    eip_secrets_scan(x, s, len, out);
    lua_createtable(L, (int)(2 * n), 0);
    for (i = 0; i < n; i++) {
        eip_pushint(L, out[i].from + 1);
        lua_rawseti(L, -2, (int)(2 * i + 1));
        eip_pushint(L, out[i].to);
        lua_rawseti(L, -2, (int)(2 * i + 2));
    }
    secrets_done(temp);
    return 1;
}

/* core.is_id(v) -> whether v is an id as eip.validate.id takes it (a bandwidth's, a project's):
 * a string of 1..64 bytes of [0-9A-Za-z._-], neither "." nor "..". Anything else gives false,
 * a number included (never converted): the caller then finds what is wrong, for its message.
 * Every call validates an id; in Lua, a pattern match tests a bracket class per byte (0.7 us
 * for a UUID), here a comparison or two per byte. */
#define ID_MAX 64

static int l_is_id(lua_State *L)
{
    size_t len = 0, i;
    const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
    int ok = s != NULL && len >= 1 && len <= ID_MAX && !(s[0] == '.' && (len == 1 || (len == 2 && s[1] == '.')));
    for (i = 0; ok && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        ok = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '.' || c == '_' || c == '-';
    }
    lua_pushboolean(L, ok);
    return 1;
}

/* core.clean_id(v, secrets, more) -> whether v is an id (core.is_id) holding no piece of the
 * secrets of the list `secrets` nor of the list `more` (nil or false: none), as
 * eip.validate.secret_id takes it: one call where that check made two or three. False for
 * anything else (the caller then finds what is wrong, for its message). */
static int l_clean_id(lua_State *L)
{
    int ok, i;
    luaL_checktype(L, 2, LUA_TTABLE);
    l_is_id(L);
    ok = lua_toboolean(L, -1);
    lua_pop(L, 1);
    for (i = 2; ok && i <= 3; i++) {
        size_t len;
        const char *s;
        secrets_index *temp;
        eip_secrets *x;
        int other;
        if (i == 3 && !lua_toboolean(L, 3))
            break;
        luaL_checktype(L, i, LUA_TTABLE);
        s = lua_tolstring(L, 1, &len);
        x = secrets_of(L, i, &other, &temp);
        ok = eip_secrets_scan(x, s, len, NULL) == 0;
        secrets_done(temp);
    }
    lua_pushboolean(L, ok);
    return 1;
}

/* ---- clock and sleep ------------------------------------------------------------------ */

/* core.file_kind(path) -> kind, size, mode: what stat(2) says of path (a symbolic link
 * followed): kind "file", "directory", "fifo", "character device", "block device", "socket" or
 * "other"; its size in bytes; its permission bits. Or nil, the system's message, and whether
 * nothing is there (ENOENT, ENOTDIR). So that a file to read is refused before it is opened:
 * opening a FIFO blocks until a writer comes, and a device reads without end. */
static int l_file_kind(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *kind = "other";
    struct stat st;
    if (stat(path, &st) != 0) {
        int err = errno;
        lua_pushnil(L);
        lua_pushstring(L, strerror(err));
        lua_pushboolean(L, err == ENOENT || err == ENOTDIR);
        return 3;
    }
    if (S_ISREG(st.st_mode))
        kind = "file";
    else if (S_ISDIR(st.st_mode))
        kind = "directory";
    else if (S_ISFIFO(st.st_mode))
        kind = "fifo";
    else if (S_ISCHR(st.st_mode))
        kind = "character device";
    else if (S_ISBLK(st.st_mode))
        kind = "block device";
    else if (S_ISSOCK(st.st_mode))
        kind = "socket";
    lua_pushstring(L, kind);
    lua_pushnumber(L, (lua_Number)st.st_size); /* exact below 2^53 bytes */
    lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
    return 3;
}

/* core.read_fd(fd, n) -> what one read(2) of at most n bytes (1..65536) from descriptor fd gives:
 * a string, "" at the end; or nil, the system's message and errno (EINTR: a caught signal, such
 * as Ctrl-C, when its handler does not restart reads). Unlike io.read(n), which waits until n
 * bytes came or the input ended, it returns what a pipe or a terminal has now: a line typed or
 * written is seen when it comes. */
#define READ_FD_MAX 65536

static int l_read_fd(lua_State *L)
{
    char buf[READ_FD_MAX];
    lua_Integer fd = luaL_checkinteger(L, 1), n = luaL_checkinteger(L, 2);
    ssize_t got;
    luaL_argcheck(L, fd >= 0 && fd <= INT_MAX, 1, "not a descriptor");
    luaL_argcheck(L, n >= 1 && n <= READ_FD_MAX, 2, "not 1..65536");
    got = read((int)fd, buf, (size_t)n);
    if (got < 0) {
        int err = errno;
        lua_pushnil(L);
        lua_pushstring(L, strerror(err));
        lua_pushinteger(L, err);
        return 3;
    }
    lua_pushlstring(L, buf, (size_t)got);
    return 1;
}

/* core.monotime() -> seconds on a monotonic clock (for elapsed times and deadlines, which
 * must not jump when the wall clock is set). */
static lua_Number monotime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9;
}

static int l_monotime(lua_State *L)
{
    lua_pushnumber(L, monotime());
    return 1;
}

/* lua_isyieldable: Lua 5.3+ has it. Under the 5.1 ABI it is LuaJIT 2.1's (nginx's LuaJIT, whose
 * coroutine table nginx replaces with one without isyieldable), and PUC Lua 5.1 has none: one
 * 5.1-ABI core loads in both (README: OpenResty), so it is looked up when first asked for, in the
 * process's own symbols, and only where they are LuaJIT's (luaJIT_setmode). */
#if LUA_VERSION_NUM < 503
#include <dlfcn.h>

typedef int (*isyieldable_fn)(lua_State *L);

static isyieldable_fn luajit_isyieldable(void)
{
    static int looked = 0;
    static isyieldable_fn fn = NULL;
    if (!looked) {
        void *self = dlopen(NULL, RTLD_LAZY);
        looked = 1;
        if (self != NULL && dlsym(self, "luaJIT_setmode") != NULL) {
            void *sym = dlsym(self, "lua_isyieldable");
            if (sym != NULL)
                memcpy(&fn, &sym, sizeof fn); /* (a data pointer to a function pointer, as POSIX allows) */
        }
    }
    return fn;
}
#endif

/* core.yieldable(): can the Lua code calling this yield (no C call between it and the start of
 * its coroutine but those the interpreter yields through: a string.gsub callback, a dofile, a
 * require's top level cannot)? A C function called from Lua runs in its caller's frame, as
 * nginx's ngx.sleep does when it yields. nil where the interpreter cannot tell (PUC Lua 5.1,
 * 5.2, LuaJIT 2.0). */
static int l_yieldable(lua_State *L)
{
#if LUA_VERSION_NUM >= 503
    lua_pushboolean(L, lua_isyieldable(L));
#else
    isyieldable_fn fn = luajit_isyieldable();
    if (fn != NULL)
        lua_pushboolean(L, fn(L));
    else
        lua_pushnil(L);
#endif
    return 1;
}

/* core.random(): a number in [0, 1) from OpenSSL's generator (seeded by the system, reseeded
 * after a fork), or nil when it fails. Retry jitter must differ between processes: Lua 5.1,
 * 5.2, 5.3 and LuaJIT start math.random from the same state in every process (every nginx
 * worker, every restart), so clients that failed together would retry together. */
static int l_random(lua_State *L)
{
    unsigned char b[8];
    unsigned long long x = 0;
    int i;
    if (RAND_bytes(b, (int)sizeof(b)) != 1) {
        lua_pushnil(L);
        return 1;
    }
    for (i = 0; i < 8; i++)
        x = (x << 8) | b[i];
    lua_pushnumber(L, (lua_Number)(x >> 11) / 9007199254740992.0); /* 53 bits / 2^53 */
    return 1;
}

/* core.sleep(seconds): blocks the thread without using CPU (the default sleep between
 * retries outside nginx; OpenResty uses ngx.sleep instead). Restarts after signals, except
 * a caught Ctrl-C (core.catch_interrupts), which ends it early.
 * Documented clamp: 0, negative or NaN waits not at all; more than a day (inf included)
 * waits a day, so the conversions below only ever see 0 < s <= 86400. */
static int l_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    struct timespec req, rem;
    if (!(s > 0))
        return 0;
    if (s > 86400)
        s = 86400;
    req.tv_sec = (time_t)s;
    req.tv_nsec = (long)((s - (lua_Number)req.tv_sec) * 1e9);
    while (nanosleep(&req, &rem) != 0 && errno == EINTR) {
        if (eip_interrupts() > 0)
            break;
        req = rem;
    }
    return 0;
}

/* core.catch_interrupts(on[, abort_at]): with true, Ctrl-C (SIGINT), SIGTERM and SIGHUP no
 * longer end the process or raise "interrupted!": they are counted, and waits end early; the
 * abort_at-th (default 2) aborts a single request in flight (a batch's are its own to abort);
 * SIGPIPE is ignored (a write to a closed pipe fails instead). With false, the previous handlers
 * are back. core.interrupts() -> the count since catching began, and the last signal's number
 * (0: none). */
static int l_catch_interrupts(lua_State *L)
{
    int on = lua_toboolean(L, 1);
    lua_Integer abort_at = luaL_optinteger(L, 2, 2);
    if (eip_interrupt_catch(on) != 0)
        return luaL_error(L, "eip.core: cannot install the signal handlers");
    if (on)
        eip_interrupt_abort_at(abort_at < 1 ? 1 : abort_at > 1000 ? 1000 : (int)abort_at);
    return 0;
}

/* core.claim_std_fds() -> stdin_closed, stdout_closed, stderr_closed. A command started with
 * one of descriptors 0-2 closed would hand that number to the first file or socket it opens: its
 * output would go into a connection to the API. Each closed one is opened on /dev/null (so that
 * nothing else takes it), and said. */
static int l_claim_std_fds(lua_State *L)
{
    int fd;
    for (fd = 0; fd <= 2; fd++) {
        int closed = fcntl(fd, F_GETFD) == -1 && errno == EBADF;
        if (closed) {
            int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
            if (n >= 0 && n != fd) {
                dup2(n, fd);
                close(n);
            }
        }
        lua_pushboolean(L, closed);
    }
    return 3;
}

static int l_interrupts(lua_State *L)
{
    lua_pushinteger(L, eip_interrupts());
    lua_pushinteger(L, eip_interrupt_signal());
    return 2;
}

/* ---- what reaches libcurl ------------------------------------------------------------ *
 * libcurl takes C strings: a NUL inside a Lua string would cut what the Lua layer validated
 * (a URL's path), and CR or LF in a method or user agent would put lines of the caller's on
 * the wire. The Lua layer never makes such strings; they are refused here once more, by the
 * field's name, before anything is sent. */

/* tchar of RFC 9110 (5.6.2), what a method and a header field name are made of, as a bit per
 * byte: ALPHA, DIGIT and !#$%&'*+-.^_`|~. Every request's method and header names are checked:
 * a strchr per punctuation byte cost more than the rest of the check. */
static const unsigned char TCHAR_BITS[32] = {
    0x00, 0x00, 0x00, 0x00, 0xfa, 0x6c, 0xff, 0x03, 0xfe, 0xff, 0xff, 0xc7, 0xff, 0xff, 0xff, 0x57,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

/* The length of s's leading run of tchar. */
static size_t token_length(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && (TCHAR_BITS[(unsigned char)s[i] >> 3] >> ((unsigned char)s[i] & 7) & 1))
        i++;
    return i;
}

/* Raises naming the field when the string s (len bytes) holds a NUL. */
static void check_no_nul(lua_State *L, const char *s, size_t len, const char *field)
{
    if (s != NULL && memchr(s, '\0', len) != NULL)
        luaL_error(L, "eip.core: field '%s' must not contain a NUL byte", field);
}

/* ---- sessions ----------------------------------------------------------------------- */

/* The connection settings at argument 1 ({ ca_file=, insecure=, user_agent= }), shared by
 * sessions and multis. Its strings are left on the stack. */
static void read_config(lua_State *L, eip_http_config *cfg)
{
    size_t len = 0, i;
    luaL_checktype(L, 1, LUA_TTABLE);
    memset(cfg, 0, sizeof(*cfg));
    cfg->ca_file = opt_str_field(L, 1, "ca_file", &len);
    check_no_nul(L, cfg->ca_file, len, "ca_file");
    cfg->user_agent = opt_str_field(L, 1, "user_agent", &len);
    for (i = 0; cfg->user_agent != NULL && i < len; i++) {
        unsigned char c = (unsigned char)cfg->user_agent[i];
        if (c < 32 || c == 127)
            luaL_error(L, "eip.core: field 'user_agent' must not contain control characters (CR, LF, NUL...)");
    }
    raw_field(L, 1, "insecure");
    cfg->insecure = lua_toboolean(L, -1);
    lua_pop(L, 1);
}

/* luaL_checkudata(L, 1, tname) for a method of that type (one with the key upvalues): the
 * metatable compared with the upvalue, not looked up in the registry by name. The same test;
 * a mismatch raises luaL_checkudata's own error. */
static void *own_udata(lua_State *L, const char *tname)
{
    void *p = lua_touserdata(L, 1);
    if (p != NULL && lua_getmetatable(L, 1)) {
        int same = lua_rawequal(L, -1, lua_upvalueindex(K_OWN_MT));
        lua_pop(L, 1);
        if (same)
            return p;
    }
    return luaL_checkudata(L, 1, tname);
}

static session *check_session(lua_State *L)
{
    session *s = own_udata(L, SESSION_MT);
    if (s->http == NULL || s->closing)
        luaL_error(L, "eip.core: session is closed");
    if (s->busy > 0) /* (see answer_protected) */
        luaL_error(L, "eip.core: session is in use (called by a finaliser during one of its methods)");
    return s;
}

static void session_free(session *s)
{
    eip_http_free(s->http);
    s->http = NULL;
}

/* The end of a method's use of s (its answer built: answer_protected): a close asked for
 * meanwhile is carried out now; else a large answer buffer is given back (the answer is Lua's
 * now). */
static void session_done(session *s)
{
    if (s->closing && s->busy == 0)
        session_free(s);
    else if (s->http != NULL && !s->closing)
        eip_http_trim(s->http);
}

static int l_session(lua_State *L)
{
    eip_http_config cfg;
    char err[128];
    session *s;
    read_config(L, &cfg);
    s = lua_newuserdata(L, sizeof(*s));
    s->http = NULL;
    s->busy = s->closing = 0;
    eip_setmetatable(L, SESSION_MT);
    s->http = eip_http_new(&cfg, err, sizeof(err));
    if (s->http == NULL)
        return luaL_error(L, "eip.core: %s", err);
    return 1;
}

static int l_session_close(lua_State *L)
{
    session *s = luaL_checkudata(L, 1, SESSION_MT);
    if (s->busy > 0) /* (a finaliser during a method: see session) */
        s->closing = 1;
    else
        session_free(s);
    return 0;
}

/* The collector's: nothing can be using a session it collects. */
static int l_session_gc(lua_State *L)
{
    session_free(luaL_checkudata(L, 1, SESSION_MT));
    return 0;
}

/* Raises unless h (len bytes) is a single "Name: value" line: no CR or LF, a token right
 * before the colon (see collect_headers). `what`: how the message names it. */
static void check_header_line(lua_State *L, const char *h, size_t len, const char *what, int i)
{
    size_t name;
    if (h == NULL || strcspn(h, "\r\n") != len || memchr(h, ':', len) == NULL)
        luaL_error(L, "eip.core: %s %d is not a single 'Name: value' line", what, i);
    name = token_length(h, len);
    if (name == 0 || h[name] != ':')
        luaL_error(L, "eip.core: %s %d is not a single 'Name: value' line (its name must be a token "
                      "right before the colon)", what, i);
}

/* Header lines come from the Lua layer, which validated them; a CR, LF or NUL here would
 * still let a caller smuggle a second header, and a line not starting with a field name (a
 * token, then the colon) would be read as the continuation of the line before it (obs-fold)
 * or as no header at all, so each is checked once more at the edge. An empty value ("Name:")
 * stays allowed: it is libcurl's way of leaving out a header it would add. The list and its
 * strings are left on the stack. */
static size_t collect_headers(lua_State *L, int t, const char **out)
{
    size_t i, n;
    int list;
    int type = raw_field_k(L, t, "headers", K_HEADERS);
    if (type == LUA_TNIL)
        return 0;
    luaL_argcheck(L, type == LUA_TTABLE, 2, "headers must be a list of strings");
    list = lua_gettop(L);
    n = lua_rawlen(L, list);
    luaL_argcheck(L, n <= MAX_HEADERS, 2, "too many headers");
    luaL_checkstack(L, (int)n + 8, "eip.core: too many headers");
    for (i = 0; i < n; i++) {
        size_t len = 0;
        const char *h = NULL;
        lua_rawgeti(L, list, (int)i + 1); /* stays on the stack */
        if (lua_type(L, -1) == LUA_TSTRING)
            h = lua_tolstring(L, -1, &len);
        check_header_line(L, h, len, "header", (int)i + 1);
        out[i] = h;
    }
    return n;
}

#define YEAR_S (86400.0 * 365)

/* A timeout field in seconds -> milliseconds for libcurl. Documented clamp: below 1 ms (0 and
 * negative included; libcurl would read 0 as "no timeout at all") is 1 ms, above a year (inf
 * included) a year. NaN has no meaning to clamp to: an error naming the field. */
static long timeout_ms_field(lua_State *L, int t, int key, lua_Number dflt)
{
    lua_Number s = opt_num_field(L, t, key, dflt);
    if (s != s)
        luaL_error(L, "eip.core: field '%s' must be a number of seconds, not NaN", key_names[key]);
    if (s < 0.001)
        return 1;
    if (s > YEAR_S)
        s = YEAR_S;
    if (s > (double)(LONG_MAX / 1000)) /* a 32-bit long holds 24.8 days of milliseconds */
        s = (double)(LONG_MAX / 1000);
    return (long)(s * 1000.0 + 0.5);
}

/* t[key] = the value on top (t: the table below it), raw, the key interned (see key_names). */
static void set_key(lua_State *L, int key)
{
    lua_pushvalue(L, lua_upvalueindex(key));
    lua_insert(L, -2);
    lua_rawset(L, -3);
}

static void set_str_key(lua_State *L, int key, const char *v)
{
    lua_pushstring(L, v);
    set_key(L, key);
}

static void set_int_key(lua_State *L, int key, long v)
{
    eip_pushint(L, v);
    set_key(L, key);
}

static void set_bool_key(lua_State *L, int key, int v)
{
    lua_pushboolean(L, v);
    set_key(L, key);
}

/* ---- a method's answer, built protected ------------------------------------------- *
 *
 * A method builds its answer (push_response) from the transfer's buffers. Lua allocates as it
 * does, and an allocation may run a finaliser: one that called a method of the same session or
 * multi (a request, a next, a cancel) would free or refill those buffers under it. So the
 * answer is built with `busy` raised, which every such method refuses (check_session,
 * check_multi), and lowered again however the building ends: it runs in a protected call, and
 * an error there (out of memory) is raised again once `busy` is back, so that the session or
 * multi stays usable. The protected call enters a trampoline, kept in the registry, with the
 * methods' upvalues (set_key reads them); nothing on the way allocates. */
typedef int (*answer_fn)(lua_State *L, void *arg);
typedef struct {
    answer_fn fn;
    void *arg;
} answer_job;

static const char session_answer_key = 's', multi_answer_key = 'm';

static int answer_trampoline(lua_State *L)
{
    answer_job *j = lua_touserdata(L, 1);
    lua_remove(L, 1);
    return j->fn(L, j->arg);
}

/* Runs fn(L, arg) protected with *busy raised; its arguments: the nargs values on top of the
 * stack (at 1..nargs in its frame). Returns the number of values it pushed (now on top), or
 * raises its error again. key: the type's answer key (see register_type). */
static int answer_protected(lua_State *L, const char *key, int *busy, answer_fn fn, void *arg, int nargs)
{
    answer_job j;
    int base = lua_gettop(L) - nargs, rc;
    j.fn = fn;
    j.arg = arg;
    (*busy)++;
    lua_pushlightuserdata(L, (void *)key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_insert(L, base + 1);
    lua_pushlightuserdata(L, &j);
    lua_insert(L, base + 2);
    rc = lua_pcall(L, nargs + 1, LUA_MULTRET, 0);
    (*busy)--;
    if (rc != 0)
        return lua_error(L);
    return lua_gettop(L) - base;
}

/* (a function with the key upvalues only: session:request, multi:next, the trampoline) */
static void push_response(lua_State *L, const eip_http_response *r)
{
    /* Sized for exactly the fields set below: a 204 has five. */
    int n = 5 + (r->request_id[0] != '\0') + (r->retry_after[0] != '\0') + (r->content_type[0] != '\0') +
            (r->location[0] != '\0') + (r->date[0] != '\0' && r->retry_after[0] != '\0') + (r->subject_token != NULL) + 2 * (r->curl_code != 0) +
            (r->proxy_status != 0) + (r->resent != 0) + (r->interrupted != 0) + (r->unsent != 0) +
            (r->caller_away != 0) + (r->held_back != 0);
    lua_createtable(L, 0, n);
    set_int_key(L, K_STATUS, r->status);
    if (r->request_id[0])
        set_str_key(L, K_REQUEST_ID, r->request_id);
    if (r->retry_after[0])
        set_str_key(L, K_RETRY_AFTER, r->retry_after);
    if (r->content_type[0])
        set_str_key(L, K_CONTENT_TYPE, r->content_type);
    if (r->location[0])
        set_str_key(L, K_LOCATION, r->location);
    if (r->date[0] && r->retry_after[0]) /* (what it is read for: no string on every answer) */
        set_str_key(L, K_DATE, r->date);
    if (r->subject_token != NULL) {
        lua_pushlstring(L, r->subject_token, r->subject_token_len);
        set_key(L, K_SUBJECT_TOKEN);
    }
    lua_pushlstring(L, r->body ? r->body : "", r->body_len);
    set_key(L, K_BODY);
    set_bool_key(L, K_TRUNCATED, r->truncated);
    lua_pushnumber(L, r->elapsed);
    set_key(L, K_ELAPSED);
    set_int_key(L, K_NEW_CONNECTIONS, r->new_connections);
    if (r->curl_code != 0) {
        set_int_key(L, K_CURL_CODE, r->curl_code);
        set_str_key(L, K_CURL_ERROR, r->curl_error);
    }
    if (r->proxy_status != 0)
        set_int_key(L, K_PROXY_STATUS, r->proxy_status);
    if (r->resent)
        set_bool_key(L, K_RESENT, 1);
    if (r->interrupted)
        set_bool_key(L, K_INTERRUPTED, 1);
    if (r->unsent)
        set_bool_key(L, K_UNSENT, 1);
    if (r->caller_away)
        set_bool_key(L, K_CALLER_AWAY, 1);
    if (r->held_back)
        set_bool_key(L, K_HELD_BACK, 1);
}

/* The request's `proxy` (index 2): nil or false to go direct, else a table { url =
 * "http://host:port", user = ?, password = ? } (lua/eip/proxy.lua makes it). The table and its
 * strings are left on the stack. */
static void read_proxy(lua_State *L, eip_http_request *req)
{
    int t;
    size_t len = 0;
    raw_field_k(L, 2, "proxy", K_PROXY);
    t = lua_gettop(L);
    if (lua_istable(L, t)) {
        req->proxy = opt_str_field(L, t, "url", &len);
        if (req->proxy == NULL)
            luaL_error(L, "eip.core: field 'proxy' must have a url");
        check_no_nul(L, req->proxy, len, "proxy.url");
        req->proxy_user = opt_str_field(L, t, "user", &len);
        check_no_nul(L, req->proxy_user, len, "proxy.user");
        req->proxy_password = opt_str_field(L, t, "password", &len);
        check_no_nul(L, req->proxy_password, len, "proxy.password");
    } else if (!lua_isnil(L, t) && !(lua_isboolean(L, t) && !lua_toboolean(L, t))) {
        luaL_error(L, "eip.core: field 'proxy' must be a table, false or nil");
    }
}

/* Reads the request table at index 2 (shared by session:request and multi:start), raw. Every
 * string kept (and the tables holding them) is left on the stack for the whole call. */
static void read_request(lua_State *L, eip_http_request *req, const char **headers)
{
    lua_Number cap;
    size_t method_len = 0, url_len = 0;
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checkstack(L, 16, "eip.core: request");
    memset(req, 0, sizeof(*req));
    req->method = opt_str_key(L, 2, K_METHOD, &method_len);
    req->url = opt_str_key(L, 2, K_URL, &url_len);
    luaL_argcheck(L, req->method != NULL && req->url != NULL, 2, "method and url are required");
    if (method_len == 0 || token_length(req->method, method_len) != method_len)
        luaL_error(L, "eip.core: field 'method' must be an HTTP method (a token: letters, digits and "
                      "!#$%%&'*+-.^_`|~)");
    check_no_nul(L, req->url, url_len, "url");
    req->body = opt_str_key(L, 2, K_BODY, &req->body_len);
    req->nheaders = collect_headers(L, 2, headers);
    req->headers = headers;
    req->timeout_ms = timeout_ms_field(L, 2, K_TIMEOUT, 30);
    req->connect_timeout_ms = timeout_ms_field(L, 2, K_CONNECT_TIMEOUT, 10);
    /* Whole seconds and bytes per second for libcurl (fractions dropped); 2^31 - 1 fits a
     * long everywhere. */
    req->low_speed_time_s = (long)opt_num_field_in(L, 2, K_LOW_SPEED_TIME, 0, 0, YEAR_S,
                                                   "0..31536000 (seconds; 0: off)");
    req->low_speed_limit = (long)opt_num_field_in(L, 2, K_LOW_SPEED_LIMIT, 0, 0, 2147483647.0,
                                                  "0..2147483647 (bytes per second)");
    cap = opt_num_field_in(L, 2, K_BODY_CAP, (lua_Number)EIP_HTTP_DEFAULT_BODY_CAP, 1,
                           (lua_Number)(1u << 30), "1..1073741824 (bytes)");
    req->body_cap = (size_t)cap;
    raw_field_k(L, 2, "no_resend", K_NO_RESEND);
    req->no_resend = lua_toboolean(L, -1);
    lua_pop(L, 1);
    read_proxy(L, req);
}

/* (answer_protected's) the response table of the eip_http_response at arg. */
static int answer_response(lua_State *L, void *arg)
{
    push_response(L, arg);
    return 1;
}

/* session:request{ method=, url=, headers={...}, body=?, timeout=, connect_timeout=,
 *                  low_speed_time=?, low_speed_limit=?, body_cap=?, proxy=? } -> response table */
static int l_session_request(lua_State *L)
{
    session *s = check_session(L);
    const char *headers[MAX_HEADERS];
    eip_http_request req;
    eip_http_response resp;
    int n;
    read_request(L, &req, headers);
    luaL_checkstack(L, 4, "eip.core: answer"); /* (room for answer_protected: nothing allocates after the request) */
    s = check_session(L); /* (a metamethod of the request's may have closed it) */
    eip_http_perform(s->http, &req, &resp);
    n = answer_protected(L, &session_answer_key, &s->busy, answer_response, &resp, 0);
    session_done(s);
    return n;
}

/* ---- prepared requests: eip.pipeline's lane --------------------------------------- *
 *
 * session:prepare(req) -> prepared   req as session:request takes it, read and checked the
 *                                    same way, its url the part every request starts with
 *                                    (the endpoint), no proxy (the lane goes direct); its
 *                                    strings copied, so that nothing of it is read again
 * session:lane(prepared, path, usable_status, secrets?)
 *   sends the prepared request to its url .. path and returns the status and the request id
 *   (nil when none came) when the answer has usable_status and no transport error (one table
 *   fewer per call: the common answer) and, given a list of secrets, the request id is one
 *   eip.pipeline's Runner:clean gives back as it is (core.plain_text, not cut off with "...");
 *   else the response table session:request returns, and nil. Then the seconds the call took
 *   (core.monotime's clock).
 * A delete of eip.pipeline's lane costs no read of a request table and builds no response
 * table: about a tenth of a request's instructions (see `make bench-profile`). */

#define PREPARED_MT "eip.core.prepared"
#define LANE_URL_MAX 4096 /* longer URLs (and signed paths) are built in the heap */
#define LANE_SIGNED_MAX (MAX_HEADERS - 5) /* entries of a signed one: Host, date, project, token, Authorization */

typedef struct {
    eip_http_request req; /* its strings in `bytes`; url: the prefix */
    const char *lines[MAX_HEADERS];
    char *bytes;
    size_t nbytes, prefix_len;
    /* Signed (signer_ref != LUA_NOREF): the lines of the entries are lines[0..nlines), the
     * pairs signed of them kvs[0..nsigned); the rest is added per request. */
    int signer_ref;
    signer_ud *signer; /* kept alive by signer_ref */
    size_t nlines, nsigned;
    eip_kv kvs[LANE_SIGNED_MAX];
    const char *host, *host_line, *project, *project_line, *token, *token_line, *base_path;
    size_t host_len, project_len, token_len, base_path_len;
    char *auth_line; /* "Authorization: ...", grown to fit */
    size_t auth_alloc;
} prepared;

/* Frees p (n bytes) wiped first: the lines hold the token, or the security token. */
static void wipe_free(char *p, size_t n)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, n);
        free(p);
    }
}

static void prepared_free(lua_State *L, prepared *p)
{
    wipe_free(p->bytes, p->nbytes);
    p->bytes = NULL;
    free(p->auth_line); /* a signature: no secret */
    p->auth_line = NULL;
    p->auth_alloc = 0;
    unref(L, &p->signer_ref);
    p->signer = NULL;
}

static int l_prepared_gc(lua_State *L)
{
    prepared_free(L, luaL_checkudata(L, 1, PREPARED_MT));
    return 0;
}

static int l_prepared_tostring(lua_State *L)
{
    luaL_checkudata(L, 1, PREPARED_MT);
    lua_pushliteral(L, "eip.core.prepared");
    return 1;
}

static const luaL_Reg prepared_methods[] = {
    {NULL, NULL},
};

/* Where read_signing copies a prepared request's strings: `at` up to `end` (at == NULL: it only
 * counts, in `total`). Reading the table twice (to count, then to copy) reads it from Lua twice,
 * and a finaliser run by an allocation between could change it (a longer value, an entry more,
 * `signed` flipped): a copy that would not fit sets `over` instead, and the read is refused. */
typedef struct {
    char *at, *end;
    size_t total;
    int over;
} space;

/* `need` bytes of sp, NUL-terminated at need - 1: where they are; NULL when only counting, or
 * when they do not fit (sp->over). */
static char *reserve(space *sp, size_t need)
{
    char *p;
    if (sp->at == NULL) {
        sp->total += need;
        return NULL;
    }
    if ((size_t)(sp->end - sp->at) < need) {
        sp->over = 1;
        return NULL;
    }
    p = sp->at;
    p[need - 1] = '\0';
    sp->at += need;
    return p;
}

/* Copies prefix .. s (s: len bytes) into sp, NUL-terminated: where it now is, or NULL (see
 * reserve). */
static char *copy_to(space *sp, const char *prefix, const char *s, size_t len)
{
    size_t plen = strlen(prefix);
    char *p = reserve(sp, plen + len + 1);
    if (p != NULL) {
        memcpy(p, prefix, plen);
        memcpy(p + plen, s, len);
    }
    return p;
}

/* The signing table at stack index `sig` (see l_session_prepare), read into p, its strings
 * copied into sp (or counted). Its strings stay on the stack. */
static void read_signing(lua_State *L, int sig, prepared *p, space *sp)
{
    size_t i, n, len;
    const char *v;
    int list;
    if (raw_field(L, sig, "headers") != LUA_TTABLE)
        luaL_error(L, "eip.core: signing.headers must be a list of {name, value} entries");
    list = lua_gettop(L);
    n = lua_rawlen(L, list);
    if (n > LANE_SIGNED_MAX)
        luaL_error(L, "eip.core: signing.headers: too many entries");
    luaL_checkstack(L, (int)n * 3 + 8, "eip.core: signing");
    p->nlines = p->nsigned = 0;
    for (i = 0; i < n; i++) {
        eip_kv kv;
        int entry, is_signed;
        lua_rawgeti(L, list, (int)i + 1);
        entry = lua_gettop(L);
        read_pair(L, "signing.headers", i, &kv);
        check_no_nul(L, kv.name, kv.name_len, "signing.headers");
        check_no_nul(L, kv.value, kv.value_len, "signing.headers");
        is_signed = !(raw_field(L, entry, "signed") == LUA_TBOOLEAN && !lua_toboolean(L, -1));
        lua_pop(L, 1);
        /* The line as signer:headers sends it: the entry's `line`, else name ": " value. */
        if (raw_field(L, entry, "line") == LUA_TSTRING) { /* (left on the stack, as the entry) */
            size_t line_len;
            const char *line = lua_tolstring(L, -1, &line_len);
            check_no_nul(L, line, line_len, "signing.headers");
            p->lines[p->nlines] = copy_to(sp, "", line, line_len);
        } else {
            char *line = reserve(sp, kv.name_len + 2 + kv.value_len + 1);
            if (line != NULL) {
                memcpy(line, kv.name, kv.name_len);
                memcpy(line + kv.name_len, ": ", 2);
                memcpy(line + kv.name_len + 2, kv.value, kv.value_len);
            }
            p->lines[p->nlines] = line;
        }
        if (is_signed) {
            p->kvs[p->nsigned].name = copy_to(sp, "", kv.name, kv.name_len);
            p->kvs[p->nsigned].name_len = kv.name_len;
            p->kvs[p->nsigned].value = copy_to(sp, "", kv.value, kv.value_len);
            p->kvs[p->nsigned].value_len = kv.value_len;
        }
        p->nlines++;
        if (is_signed)
            p->nsigned++;
    }
    v = opt_str_field(L, sig, "host", &len);
    if (v == NULL)
        luaL_error(L, "eip.core: signing.host must be a string");
    check_no_nul(L, v, len, "signing.host");
    /* Each value signed is the end of the line that sends it. */
    p->host_line = copy_to(sp, "Host: ", v, len);
    p->host = p->host_line ? p->host_line + 6 : NULL;
    p->host_len = len;
    v = opt_str_field(L, sig, "project_id", &len);
    check_no_nul(L, v, len, "signing.project_id");
    p->project_line = v ? copy_to(sp, "X-Project-Id: ", v, len) : NULL;
    p->project = p->project_line ? p->project_line + 14 : NULL;
    p->project_len = v ? len : 0;
    v = opt_str_field(L, sig, "base_path", &len);
    check_no_nul(L, v, len, "signing.base_path");
    p->base_path = copy_to(sp, "", v ? v : "", v ? len : 0);
    p->base_path_len = v ? len : 0;
    p->token = p->token_line = NULL;
    p->token_len = 0;
    if (p->signer != NULL && p->signer->token_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, p->signer->token_ref); /* stays on the stack */
        v = lua_tolstring(L, -1, &len);
        p->token_line = copy_to(sp, "X-Security-Token: ", v, len);
        p->token = p->token_line ? p->token_line + 18 : NULL;
        p->token_len = len;
    }
    if (sp->over)
        luaL_error(L, "eip.core: the signing table changed while it was read (by a finaliser)");
}

/* session:prepare(req [, signing]) -> prepared (see above). signing: { signer = core.signer,
 * host = "host:port" (Host, as sent), project_id = ? (X-Project-Id), base_path = ? (put before
 * each path in what is signed), headers = { entries as signer:headers takes them } }: each
 * request is then signed as signer:headers signs it (the entries' lines, Host, X-Sdk-Date of
 * its second, X-Project-Id, X-Security-Token, Authorization, in that order); req.headers must
 * be nil then. */
static int l_session_prepare(lua_State *L)
{
    const char *headers[MAX_HEADERS];
    eip_http_request req;
    prepared *p;
    size_t i;
    int sig = 0, self;
    space sp = {NULL, NULL, 0, 0};
    check_session(L);
    lua_settop(L, 3); /* (signing, or nil, at 3: what reading pushes comes above it) */
    read_request(L, &req, headers);
    if (req.proxy != NULL)
        luaL_error(L, "eip.core: field 'proxy' must be false or nil in a prepared request (it goes direct)");
    if (req.body != NULL)
        luaL_error(L, "eip.core: field 'body' must be nil in a prepared request");
    p = lua_newuserdata(L, sizeof *p);
    memset(p, 0, sizeof *p);
    p->signer_ref = LUA_NOREF;
    eip_setmetatable(L, PREPARED_MT);
    self = lua_gettop(L);
    if (!lua_isnil(L, 3)) {
        void *u;
        sig = 3;
        luaL_checktype(L, sig, LUA_TTABLE);
        if (req.nheaders != 0)
            luaL_error(L, "eip.core: field 'headers' must be nil in a signed prepared request (signing.headers)");
        raw_field(L, sig, "signer");
        u = lua_touserdata(L, -1);
        if (u == NULL || !lua_getmetatable(L, -1))
            luaL_error(L, "eip.core: signing.signer must be a core.signer");
        luaL_getmetatable(L, SIGNER_MT);
        if (!lua_rawequal(L, -1, -2))
            luaL_error(L, "eip.core: signing.signer must be a core.signer");
        lua_pop(L, 2);
        if (((signer_ud *)u)->signer == NULL)
            luaL_error(L, "eip.core: signer is closed");
        p->signer = u;
        read_signing(L, sig, p, &sp);
    }
    /* (the request's strings were read once, into req and headers: they fit as counted) */
    sp.total += strlen(req.method) + 1 + strlen(req.url) + 1;
    for (i = 0; i < req.nheaders; i++)
        sp.total += strlen(headers[i]) + 1;
    if ((p->bytes = malloc(sp.total)) == NULL)
        return luaL_error(L, "eip.core: out of memory (prepared request)");
    p->nbytes = sp.total;
    p->req = req;
    sp.at = p->bytes;
    sp.end = p->bytes + sp.total;
    p->req.method = copy_to(&sp, "", req.method, strlen(req.method));
    p->req.url = copy_to(&sp, "", req.url, strlen(req.url));
    p->prefix_len = strlen(req.url);
    for (i = 0; i < req.nheaders; i++)
        p->lines[i] = copy_to(&sp, "", headers[i], strlen(headers[i]));
    p->req.headers = p->lines;
    if (sig) {
        p->req.no_resend = 1; /* (each send is one more signature: see eip_http_request) */
        read_signing(L, sig, p, &sp);
        /* Each line it sends, checked as session:request checks its own (the Authorization
         * line is the signer's: "Authorization: SDK-HMAC-SHA256 ..."). */
        for (i = 0; i < p->nlines; i++)
            check_header_line(L, p->lines[i], strlen(p->lines[i]), "signing.headers line", (int)i + 1);
        check_header_line(L, p->host_line, strlen(p->host_line), "signing.host line", 1);
        if (p->project_line != NULL)
            check_header_line(L, p->project_line, strlen(p->project_line), "signing.project_id line", 1);
        if (p->token_line != NULL)
            check_header_line(L, p->token_line, strlen(p->token_line), "security token line", 1);
        raw_field(L, sig, "signer");
        p->signer_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* the signer lives while p does */
    }
    lua_pushvalue(L, self); /* (below what reading left on the stack) */
    return 1;
}

/* base .. path into small (cap bytes) or, when longer, the heap: NULL when out of memory. */
static char *joined(char *small, size_t cap, const char *base, size_t base_len, const char *path, size_t path_len)
{
    char *out = small;
    if (base_len + path_len >= cap && (out = malloc(base_len + path_len + 1)) == NULL)
        return NULL;
    memcpy(out, base, base_len);
    memcpy(out + base_len, path, path_len + 1);
    return out;
}

/* Signs p's request to `path` (p->base_path .. path as signed): its header lines into lines,
 * their count returned; 0 with *why when memory ran out (or the signer refused: the lane's
 * inputs were checked when it was made), nothing sent: l_session_lane answers as a transport
 * failure, not a raw error. */
static size_t sign_prepared(lua_State *L, prepared *p, const char *path, size_t path_len, const char **lines,
                            const char **why)
{
    char small[LANE_URL_MAX], *signed_path;
    eip_kv kvs[MAX_HEADERS];
    eip_sign_input in;
    const char *auth = NULL, *err = NULL;
    size_t n = p->nsigned, nl, auth_len = 0;
    eip_sign_status st;
    signer_ud *u = p->signer;
    if (u == NULL || u->signer == NULL)
        luaL_error(L, "eip.core: signer is closed");
    signer_date(L, u, (long long)time(NULL)); /* (the signer's: signer:headers' too) */
    memcpy(kvs, p->kvs, n * sizeof *kvs);
    set_kv(&kvs[n++], "Host", p->host, p->host_len);
    set_kv(&kvs[n++], "X-Sdk-Date", u->date_line + DATE_PREFIX_LEN, 16);
    if (p->project != NULL)
        set_kv(&kvs[n++], "X-Project-Id", p->project, p->project_len);
    if (p->token != NULL)
        set_kv(&kvs[n++], "X-Security-Token", p->token, p->token_len);
    signed_path = joined(small, sizeof small, p->base_path, p->base_path_len, path, path_len);
    if (signed_path == NULL) {
        *why = "out of memory (signed path)";
        return 0;
    }
    memset(&in, 0, sizeof in);
    in.method = p->req.method;
    in.path = signed_path;
    in.path_len = p->base_path_len + path_len;
    in.headers = kvs;
    in.nheaders = n;
    st = eip_signer_sign(u->signer, &in, &auth, &auth_len, NULL, &err);
    if (signed_path != small)
        free(signed_path);
    if (st != EIP_SIGN_OK) {
        *why = st == EIP_SIGN_ENOMEM ? "out of memory (signing)" : "cannot sign";
        return 0;
    }
    if (auth_len + 16 > p->auth_alloc) {
        char *grown = realloc(p->auth_line, auth_len + 16);
        if (grown == NULL) {
            *why = "out of memory (Authorization)";
            return 0;
        }
        p->auth_line = grown;
        p->auth_alloc = auth_len + 16;
    }
    memcpy(p->auth_line, "Authorization: ", 15);
    memcpy(p->auth_line + 15, auth, auth_len);
    p->auth_line[15 + auth_len] = '\0';
    for (nl = 0; nl < p->nlines; nl++)
        lines[nl] = p->lines[nl];
    lines[nl++] = p->host_line;
    lines[nl++] = u->date_line;
    if (p->project_line != NULL)
        lines[nl++] = p->project_line;
    if (p->token_line != NULL)
        lines[nl++] = p->token_line;
    lines[nl++] = p->auth_line;
    return nl; /* at most LANE_SIGNED_MAX entries and five more */
}

/* What l_session_lane answers with (see answer_protected): the response, or its status and
 * request id when they alone are wanted. */
typedef struct {
    eip_http_response *resp;
    lua_Integer usable;
    int secrets; /* the secrets' list is the one argument */
    lua_Number started;
} lane_answer;

static int answer_lane(lua_State *L, void *arg)
{
    const lane_answer *a = arg;
    const eip_http_response *resp = a->resp;
    if (resp->curl_code == 0 && resp->status == a->usable && !resp->resent && !resp->interrupted) {
        size_t n = strlen(resp->request_id);
        int plain = n == 0 || !a->secrets;
        if (!plain && !(n >= 3 && memcmp(resp->request_id + n - 3, "...", 3) == 0)) {
            int top = lua_gettop(L);
            lua_pushlightuserdata(L, &secrets_cache_key);
            lua_rawget(L, LUA_REGISTRYINDEX);
            plain = text_plain(L, top + 1, resp->request_id, n, 1);
            lua_settop(L, top); /* the cache, and a temporary index if one was made */
        }
        if (plain) {
            eip_pushint(L, resp->status);
            if (n > 0)
                lua_pushlstring(L, resp->request_id, n);
            else
                lua_pushnil(L);
            lua_pushnumber(L, monotime() - a->started);
            return 3;
        }
    }
    push_response(L, resp);
    lua_pushnil(L);
    lua_pushnumber(L, monotime() - a->started);
    return 3;
}

/* The lane's answer for a request it could not make (memory ran out: see sign_prepared): the
 * response table of a transport failure of which nothing went out, nil, the seconds taken. */
static int lane_unsent(lua_State *L, session *s, const char *why, lua_Number started)
{
    eip_http_response resp;
    lane_answer a;
    int n;
    memset(&resp, 0, sizeof resp);
    resp.curl_code = CURLE_OUT_OF_MEMORY;
    resp.unsent = 1;
    snprintf(resp.curl_error, sizeof resp.curl_error, "%s", why);
    a.resp = &resp;
    a.usable = -1;
    a.secrets = 0;
    a.started = started;
    luaL_checkstack(L, 4, "eip.core: answer");
    n = answer_protected(L, &session_answer_key, &s->busy, answer_lane, &a, 0);
    session_done(s);
    return n;
}

static int l_session_lane(lua_State *L)
{
    session *s = check_session(L);
    prepared *p = luaL_checkudata(L, 2, PREPARED_MT);
    size_t path_len;
    const char *path = luaL_checklstring(L, 3, &path_len);
    lua_Integer usable = luaL_checkinteger(L, 4);
    int secrets = lua_istable(L, 5);
    char small[LANE_URL_MAX], *url;
    const char *lines[MAX_HEADERS];
    eip_http_request req;
    eip_http_response resp;
    lane_answer a;
    int n;
    lua_Number started = monotime();
    if (p->bytes == NULL)
        return luaL_error(L, "eip.core: prepared request was freed");
    check_no_nul(L, path, path_len, "path");
    req = p->req;
    if (p->signer_ref != LUA_NOREF) {
        const char *why = NULL;
        req.nheaders = sign_prepared(L, p, path, path_len, lines, &why);
        req.headers = lines;
        s = check_session(L); /* (a finaliser run by the signing's allocations may have closed it) */
        if (req.nheaders == 0)
            return lane_unsent(L, s, why, started);
    }
    /* (room for answer_protected, and the session looked at again after it: from here on
     * nothing allocates in Lua until the answer, nor raises while url is held) */
    luaL_checkstack(L, 5, "eip.core: answer");
    s = check_session(L);
    url = joined(small, sizeof small, p->req.url, p->prefix_len, path, path_len);
    if (url == NULL)
        return lane_unsent(L, s, "out of memory (url)", started);
    req.url = url;
    eip_http_perform(s->http, &req, &resp);
    if (url != small)
        free(url);
    a.resp = &resp;
    a.usable = usable;
    a.secrets = secrets;
    a.started = started;
    if (secrets)
        lua_pushvalue(L, 5);
    n = answer_protected(L, &session_answer_key, &s->busy, answer_lane, &a, secrets ? 1 : 0);
    session_done(s);
    return n;
}

static int l_session_tostring(lua_State *L)
{
    session *s = luaL_checkudata(L, 1, SESSION_MT);
    lua_pushfstring(L, "eip.core.session (%s)", s->http && !s->closing ? "open" : "closed");
    return 1;
}

static const luaL_Reg session_methods[] = {
    {"request", l_session_request},
    {"prepare", l_session_prepare},
    {"lane", l_session_lane},
    {"close", l_session_close},
    {NULL, NULL},
};

/* ==== multi: concurrent requests (src/multi.c), for client:delete_bandwidths ============ *
 *
 * core.multi{ ca_file=?, insecure=?, user_agent=? } -> multi   (one per client, kept across
 * batches: its connection cache is what makes consecutive batches reuse connections)
 *   multi:limit(n)            at most n (1..64) transfers in flight and connections per host
 *   multi:start(request)      starts a request (the table session:request takes) on a free
 *                             slot -> slot number (1-based); nil, message when none is free
 *   multi:next(timeout)       drives the transfers for up to timeout seconds until one ends
 *                             -> slot, response table (as session:request's); nil on timeout.
 *                             `caller_away` = true: it timed out unsent only for the time the
 *                             caller spent between two calls (see timed_out_away in multi.c)
 *   multi:pending()           transfers started and not yet returned by next (0 once closed)
 *   multi:cancel()            aborts every transfer in flight (the multi stays usable; a
 *                             closed multi has none: nothing to do, no error, so that a batch's
 *                             clean-up after a client closed mid-batch does not hide why it
 *                             stopped) -> { [slot] = true } for those of which nothing had been
 *                             sent yet (the contract's `unsent`)
 *   multi:halt([sends])       the caller sends nothing more (a batch stopped): the transfers in
 *                             flight run to their answers, but none is sent again when its
 *                             kept-alive connection dies unanswered (it ends as that reset);
 *                             a caught interrupt does the same by itself (closed: nothing to do);
 *                             with sends true (a stop or an abort), one not sent yet never goes
 *                             out: it ends unsent, `held_back` = true
 *   multi:close()             frees it all now (also done by the garbage collector)
 * Signing, mapping and retries stay in Lua (lua/eip/batch.lua): the caller starts each request
 * right after signing it. */

#define MULTI_MT "eip.core.multi"

typedef struct {
    eip_multi *multi;
    int busy, closing; /* as a session's */
} multi_ud;

static void multi_free(multi_ud *u)
{
    eip_multi_free(u->multi);
    u->multi = NULL;
}

static multi_ud *check_multi(lua_State *L)
{
    multi_ud *u = own_udata(L, MULTI_MT);
    if (u->multi == NULL || u->closing)
        luaL_error(L, "eip.core: multi is closed");
    if (u->busy > 0) /* (see answer_protected) */
        luaL_error(L, "eip.core: multi is in use (called by a finaliser during one of its methods)");
    return u;
}

static int l_multi(lua_State *L)
{
    eip_http_config cfg;
    char err[128];
    multi_ud *u;
    read_config(L, &cfg);
    u = lua_newuserdata(L, sizeof(*u));
    u->multi = NULL;
    u->busy = u->closing = 0;
    eip_setmetatable(L, MULTI_MT);
    u->multi = eip_multi_new(&cfg, err, sizeof(err));
    if (u->multi == NULL)
        return luaL_error(L, "eip.core: %s", err);
    return 1;
}

static int l_multi_limit(lua_State *L)
{
    multi_ud *u = check_multi(L);
    lua_Number n = luaL_checknumber(L, 2);
    luaL_argcheck(L, n >= 1 && n <= EIP_MULTI_MAX_SLOTS && n == (lua_Number)(int)n, 2,
                  "limit must be an integer in 1..64");
    eip_multi_set_limit(u->multi, (int)n);
    return 0;
}

static int l_multi_start(lua_State *L)
{
    multi_ud *u = check_multi(L);
    const char *headers[MAX_HEADERS];
    eip_http_request req;
    char err[128];
    int slot;
    read_request(L, &req, headers);
    u = check_multi(L); /* (a metamethod of the request's may have closed it) */
    slot = eip_multi_start(u->multi, &req, err, sizeof(err));
    if (slot < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    eip_pushint(L, slot + 1);
    return 1;
}

/* (answer_protected's) multi:next's slot and response table. */
typedef struct {
    int slot;
    const eip_http_response *resp;
} multi_answer;

static int answer_multi(lua_State *L, void *arg)
{
    const multi_answer *a = arg;
    eip_pushint(L, a->slot + 1);
    push_response(L, a->resp);
    return 2;
}

static int l_multi_next(lua_State *L)
{
    multi_ud *u = check_multi(L);
    const eip_http_response *resp;
    lua_Number timeout = luaL_optnumber(L, 2, 0);
    /* Documented clamp: 0, negative or NaN only collects what is ready; above a day (inf
     * included) waits a day at most. Only 0 < timeout <= 86400 is converted. */
    long ms = timeout > 0 ? (timeout > 86400 ? 86400000L : (long)(timeout * 1000.0 + 0.5)) : 0;
    int slot;
    multi_answer a;
    luaL_checkstack(L, 4, "eip.core: answer"); /* (room for answer_protected: nothing allocates after the peek) */
    slot = eip_multi_peek(u->multi, ms, &resp);
    if (slot < 0)
        return 0;
    a.slot = slot;
    a.resp = resp;
    /* (may raise, out of memory: the answer then stays for the next call) */
    answer_protected(L, &multi_answer_key, &u->busy, answer_multi, &a, 0);
    if (u->closing && u->busy == 0) { /* (a close a finaliser asked for meanwhile) */
        multi_free(u);
        return 2;
    }
    eip_multi_pop(u->multi);
    eip_multi_trim(u->multi, slot); /* the answer is Lua's now: a large buffer is given back */
    return 2;
}

static int l_multi_pending(lua_State *L)
{
    multi_ud *u = luaL_checkudata(L, 1, MULTI_MT);
    eip_pushint(L, u->multi != NULL ? eip_multi_pending(u->multi) : 0);
    return 1;
}

static int l_multi_cancel(lua_State *L)
{
    multi_ud *u = luaL_checkudata(L, 1, MULTI_MT);
    if (u->busy > 0) /* (see answer_protected) */
        return luaL_error(L, "eip.core: multi is in use (called by a finaliser during one of its methods)");
    int unsent[EIP_MULTI_MAX_SLOTS], n = 0, i;
    if (u->multi != NULL)
        n = eip_multi_cancel(u->multi, unsent);
    lua_createtable(L, 0, n);
    for (i = 0; i < n; i++) {
        eip_pushint(L, unsent[i] + 1);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    }
    return 1;
}

static int l_multi_halt(lua_State *L)
{
    multi_ud *u = luaL_checkudata(L, 1, MULTI_MT);
    if (u->busy > 0) /* (see answer_protected) */
        return luaL_error(L, "eip.core: multi is in use (called by a finaliser during one of its methods)");
    if (u->multi != NULL)
        eip_multi_halt(u->multi, lua_toboolean(L, 2));
    return 0;
}

static int l_multi_close(lua_State *L)
{
    multi_ud *u = luaL_checkudata(L, 1, MULTI_MT);
    if (u->busy > 0) /* (a finaliser during a method: see session) */
        u->closing = 1;
    else
        multi_free(u);
    return 0;
}

static int l_multi_gc(lua_State *L)
{
    multi_free(luaL_checkudata(L, 1, MULTI_MT));
    return 0;
}

static int l_multi_tostring(lua_State *L)
{
    multi_ud *u = luaL_checkudata(L, 1, MULTI_MT);
    if (u->multi == NULL || u->closing)
        lua_pushliteral(L, "eip.core.multi (closed)");
    else
        lua_pushfstring(L, "eip.core.multi (%d pending)", eip_multi_pending(u->multi));
    return 1;
}

static const luaL_Reg multi_methods[] = {
    {"limit", l_multi_limit},
    {"start", l_multi_start},
    {"next", l_multi_next},
    {"pending", l_multi_pending},
    {"cancel", l_multi_cancel},
    {"halt", l_multi_halt},
    {"close", l_multi_close},
    {NULL, NULL},
};

/* ==== end of multi ======================================================================= */

static const luaL_Reg core_functions[] = {
    {"multi", l_multi},
    {"session", l_session},
    {"status", l_status},
    {"statuses", l_statuses},
    {"error_code", l_error_code},
    {"error_codes", l_error_codes},
    {"sign", l_sign},
    {"signer", l_signer},
    {"sdk_date", l_sdk_date},
    {"blank_controls", l_blank_controls},
    {"is_id", l_is_id},
    {"plain_text", l_plain_text},
    {"secret_ranges", l_secret_ranges},
    {"monotime", l_monotime},
    {"yieldable", l_yieldable},
    {"random", l_random},
    {"escape_controls", l_escape_controls},
    {"file_kind", l_file_kind},
    {"read_fd", l_read_fd},
    {"sleep", l_sleep},
    {"catch_interrupts", l_catch_interrupts},
    {"interrupts", l_interrupts},
    {"claim_std_fds", l_claim_std_fds},
    {NULL, NULL},
};

/* Pushes the methods' upvalues (the interned names, see key_names, then the metatable at mt). */
static void push_key_upvalues(lua_State *L, int mt)
{
    int i;
    luaL_checkstack(L, K_COUNT + 1, "eip.core: keys");
    for (i = 1; i < K_OWN_MT; i++)
        lua_pushstring(L, key_names[i]);
    lua_pushvalue(L, mt);
}

/* The metatable of a userdata type: its methods, __gc and __tostring. answer_key: NULL, or (a
 * type whose methods have the key upvalues) where the registry keeps its
 * answers' trampoline, a closure with the same upvalues (see answer_protected). */
static void register_type(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                          lua_CFunction tostring, const char *answer_key)
{
    int mt;
    luaL_newmetatable(L, name);
    mt = lua_gettop(L);
    if (answer_key != NULL) {
        lua_pushlightuserdata(L, (void *)answer_key);
        push_key_upvalues(L, mt);
        lua_pushcclosure(L, answer_trampoline, K_COUNT - 1);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    lua_newtable(L);
    if (answer_key != NULL)
        push_key_upvalues(L, mt);
    luaL_setfuncs(L, methods, answer_key != NULL ? K_COUNT - 1 : 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
}

int luaopen_eip_core(lua_State *L)
{
    eip_pin_self(); /* finalisers may call into the core after package would unload it */
    eip_http_watch_forks(); /* before any fork: handles made here are not reused in a child */
    register_type(L, SESSION_MT, session_methods, l_session_gc, l_session_tostring, &session_answer_key);
    register_type(L, MULTI_MT, multi_methods, l_multi_gc, l_multi_tostring, &multi_answer_key);
    register_type(L, SIGNER_MT, signer_methods, l_signer_gc, l_signer_tostring, NULL);
    register_type(L, PREPARED_MT, prepared_methods, l_prepared_gc, l_prepared_tostring, NULL);

    luaL_newmetatable(L, SECRETS_MT);
    lua_pushcfunction(L, l_secrets_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    lua_pushlightuserdata(L, &secrets_cache_key); /* the secrets' indexes, by list (weak keys) */
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);

    luaL_newlib(L, core_functions);
    /* The two that index secrets hold the cache as their upvalue: a registry look-up less for
     * every id checked and every text cleaned. */
    lua_pushlightuserdata(L, &secrets_cache_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, l_plain_text, 1);
    lua_setfield(L, -3, "plain_text");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, l_secret_ranges, 1);
    lua_setfield(L, -3, "secret_ranges");
    lua_pushcclosure(L, l_clean_id, 1);
    lua_setfield(L, -2, "clean_id");
    set_str(L, "_VERSION", EIP_VERSION);
    set_str(L, "backend", eip_http_backend_version());
    return 1;
}
