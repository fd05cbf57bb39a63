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

/* LuaJIT 2.1 ships the 5.2 luaL_setfuncs and plain 5.1 does not. LUAJIT_VERSION cannot tell
 * them apart: it lives in luajit.h, which lua.h does not include (and plain 5.1 has no
 * luajit.h to include). LuaJIT's lauxlib.h does define luaL_newlib, a 5.2 name plain 5.1
 * lacks, so that macro is the marker. */
#ifdef luaL_newlib
#define EIP_LUAJIT 1
#else
#define EIP_LUAJIT 0
#endif

#ifndef luaL_newlibtable
#define luaL_newlibtable(L, l) lua_createtable((L), 0, (int)(sizeof(l) / sizeof((l)[0]) - 1))
#endif

#if !EIP_LUAJIT
/* "static inline": a translation unit that does not use it gets no -Wunused-function
 * warning for it. */
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
#define luaL_setfuncs(L, l, n) eip_compat_setfuncs((L), (l), (n))
#endif /* !EIP_LUAJIT */

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
