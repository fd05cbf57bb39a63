/* failmalloc.c - an LD_PRELOAD allocator that fails on demand, for spec/oom_core_spec.lua: the
 * C core's and libcurl's own allocations running out (build/oom-host fails only Lua's).
 *
 * Loaded with LD_PRELOAD into a child Lua 5.4 and required there as the module "failmalloc":
 *   fm.arm("core.so,libcurl", skip, n)   the allocations made from code of those objects fail,
 *                                        n of them after `skip` succeed (a name is matched
 *                                        against the loaded objects' paths)
 *   fm.fail_strdup(s, n)                 the next n strdup(s) fail, whoever calls (libcurl
 *                                        copies its string options with strdup)
 *   fm.disarm() -> seen, failed          the allocations looked at, and those failed
 * Every other allocation goes to glibc's (__libc_malloc...). Built into build/failmalloc.so
 * (Makefile). */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <link.h>
#include <lua.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

#define RANGES 16

static uintptr_t lo[RANGES], hi[RANGES];
static int nranges;
static char wanted[256];
static long skip_left = -1; /* -1: disarmed */
static long fail_left, seen, failed;
static char dup_match[128];
static long dup_left;

/* The executable segments of the loaded objects whose path holds one of wanted's names. */
static int note_object(struct dl_phdr_info *info, size_t size, void *data)
{
    char names[sizeof(wanted)], *name, *save = NULL;
    (void)size;
    (void)data;
    if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0')
        return 0;
    memcpy(names, wanted, sizeof(names));
    for (name = strtok_r(names, ",", &save); name != NULL; name = strtok_r(NULL, ",", &save)) {
        int i;
        if (strstr(info->dlpi_name, name) == NULL)
            continue;
        for (i = 0; i < info->dlpi_phnum && nranges < RANGES; i++) {
            const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
            if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
                lo[nranges] = info->dlpi_addr + ph->p_vaddr;
                hi[nranges] = lo[nranges] + ph->p_memsz;
                nranges++;
            }
        }
        break;
    }
    return 0;
}

static int from_wanted(const void *caller)
{
    uintptr_t a = (uintptr_t)caller;
    int i;
    for (i = 0; i < nranges; i++)
        if (a >= lo[i] && a < hi[i])
            return 1;
    return 0;
}

static int should_fail(const void *caller)
{
    if (__atomic_load_n(&skip_left, __ATOMIC_SEQ_CST) < 0 || !from_wanted(caller))
        return 0;
    __atomic_add_fetch(&seen, 1, __ATOMIC_SEQ_CST);
    if (__atomic_sub_fetch(&skip_left, 1, __ATOMIC_SEQ_CST) >= 0)
        return 0;
    __atomic_store_n(&skip_left, 0, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&fail_left, __ATOMIC_SEQ_CST) <= 0)
        return 0;
    __atomic_sub_fetch(&fail_left, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&failed, 1, __ATOMIC_SEQ_CST);
    return 1;
}

void *malloc(size_t n)
{
    return should_fail(__builtin_return_address(0)) ? NULL : __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    return should_fail(__builtin_return_address(0)) ? NULL : __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    return n != 0 && should_fail(__builtin_return_address(0)) ? NULL : __libc_realloc(p, n);
}

char *strdup(const char *s)
{
    size_t n;
    char *d;
    if (__atomic_load_n(&dup_left, __ATOMIC_SEQ_CST) > 0 && strcmp(s, dup_match) == 0) {
        __atomic_sub_fetch(&dup_left, 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&failed, 1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    if (should_fail(__builtin_return_address(0)))
        return NULL;
    n = strlen(s) + 1;
    if ((d = __libc_malloc(n)) != NULL)
        memcpy(d, s, n);
    return d;
}

static int l_arm(lua_State *L)
{
    const char *names = luaL_checkstring(L, 1);
    lua_Integer skip = luaL_checkinteger(L, 2), n = luaL_optinteger(L, 3, 1);
    __atomic_store_n(&skip_left, -1L, __ATOMIC_SEQ_CST);
    strncpy(wanted, names, sizeof(wanted) - 1);
    nranges = 0;
    dl_iterate_phdr(note_object, NULL);
    seen = failed = 0;
    fail_left = (long)n;
    __atomic_store_n(&skip_left, (long)skip, __ATOMIC_SEQ_CST);
    lua_pushinteger(L, nranges);
    return 1;
}

static int l_disarm(lua_State *L)
{
    __atomic_store_n(&skip_left, -1L, __ATOMIC_SEQ_CST);
    __atomic_store_n(&dup_left, 0L, __ATOMIC_SEQ_CST);
    lua_pushinteger(L, seen);
    lua_pushinteger(L, failed);
    return 2;
}

static int l_fail_strdup(lua_State *L)
{
    strncpy(dup_match, luaL_checkstring(L, 1), sizeof(dup_match) - 1);
    failed = 0;
    __atomic_store_n(&dup_left, (long)luaL_optinteger(L, 2, 1), __ATOMIC_SEQ_CST);
    return 0;
}

int luaopen_failmalloc(lua_State *L);
int luaopen_failmalloc(lua_State *L)
{
    static const luaL_Reg f[] = {
        {"arm", l_arm}, {"disarm", l_disarm}, {"fail_strdup", l_fail_strdup}, {NULL, NULL},
    };
    luaL_newlib(L, f);
    return 1;
}
