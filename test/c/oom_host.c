/* oom_host.c - Lua 5.4 with eip.core linked in, whose allocator can be told to refuse memory:
 * what spec/oom_spec.lua runs its scripts in, to see that the binding loses nothing, leaks
 * nothing and caches nothing half-made when an allocation fails (and Lua raises) in the middle
 * of a call.
 *
 *   build/oom-host script.lua
 *
 * The script gets a global refuse(n): from then on every block of n bytes or more is refused
 * (0: none); and heap_in_use(): the bytes malloc has handed out and not had back (glibc's
 * mallinfo2), for scripts that look for leaks (the RSS would not tell: freed memory stays). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

int luaopen_eip_core(lua_State *L);

static size_t refuse_from = 0; /* 0: refuse nothing */

static void *allocate(void *ud, void *block, size_t old_size, size_t size)
{
    (void)ud;
    (void)old_size;
    if (size == 0) {
        free(block);
        return NULL;
    }
    if (refuse_from != 0 && size >= refuse_from)
        return NULL;
    return realloc(block, size);
}

static int l_refuse(lua_State *L)
{
    lua_Integer n = luaL_optinteger(L, 1, 0);
    refuse_from = n > 0 ? (size_t)n : 0;
    return 0;
}

static int l_heap_in_use(lua_State *L)
{
    struct mallinfo2 mi = mallinfo2();
    lua_pushinteger(L, (lua_Integer)(mi.uordblks + mi.hblkhd));
    return 1;
}

int main(int argc, char **argv)
{
    lua_State *L;
    int status;
    if (argc != 2) {
        fprintf(stderr, "usage: oom-host script.lua\n");
        return 2;
    }
    L = lua_newstate(allocate, NULL);
    if (L == NULL)
        return 1;
    luaL_openlibs(L);
    luaL_requiref(L, "eip.core", luaopen_eip_core, 0);
    lua_pop(L, 1);
    lua_register(L, "refuse", l_refuse);
    lua_register(L, "heap_in_use", l_heap_in_use);
    status = luaL_dofile(L, argv[1]);
    if (status != LUA_OK)
        fprintf(stderr, "oom-host: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return status == LUA_OK ? 0 : 1;
}
