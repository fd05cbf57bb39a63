/* compat.h - every Lua C API difference lua-eip cares about, in one place.
 *
 * The core builds against Lua 5.4 (the main target), 5.2/5.3, and Lua 5.1 / LuaJIT 2.1 for
 * OpenResty. Code outside this header uses the 5.2+ names only.
 */
#ifndef EIP_COMPAT_H
#define EIP_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502 /* Lua 5.1 and LuaJIT */

#define lua_rawlen(L, i) lua_objlen((L), (i))

#ifndef luaL_newlibtable
#define luaL_newlibtable(L, l) lua_createtable((L), 0, (int)(sizeof(l) / sizeof((l)[0]) - 1))
#endif

/* LuaJIT 2.1 also ships the 5.2 luaL_setfuncs, but plain 5.1 does not: a core built against
 * LuaJIT's headers that called it would not load in PUC Lua 5.1 (undefined symbol), and the
 * rock installed for OpenResty, whose `eip` command runs lua5.1, would be half broken. The shim
 * serves both, so one 5.1-ABI core loads in either, whichever headers built it. "static
 * inline": a translation unit that does not use it gets no -Wunused-function warning. */
static inline void eip_compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    luaL_checkstack(L, nup + 1, "too many upvalues");
    for (; l->name != NULL; l++) {
        int i;
        for (i = 0; i < nup; i++)
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
#undef luaL_setfuncs
#define luaL_setfuncs(L, l, n) eip_compat_setfuncs((L), (l), (n))

#ifndef luaL_newlib
#define luaL_newlib(L, l) (luaL_newlibtable((L), (l)), luaL_setfuncs((L), (l), 0))
#endif

#define eip_setmetatable(L, tname) (luaL_getmetatable((L), (tname)), lua_setmetatable((L), -2))

#else /* 5.2+ */

#define eip_setmetatable(L, tname) luaL_setmetatable((L), (tname))

#endif

/* lua_Integer is 64-bit in 5.3+, ptrdiff_t in 5.1/5.2: pass status codes and sizes through
 * these so both behave the same. */
#define eip_pushint(L, n) lua_pushinteger((L), (lua_Integer)(n))

#endif
