/* pin.h - keeps the C core loaded until the process ends. */
#ifndef EIP_PIN_H
#define EIP_PIN_H

/* Takes one reference to the shared object holding this code, marked RTLD_NODELETE, the first
 * time it is called in the process. Lua 5.1 and LuaJIT may unload a C module (dlclose, from
 * package's __gc) at lua_close before the finalisers that still call into it have run: a
 * client's own or one of the caller's (a logger flushing through client:clean). Those would
 * then jump into unmapped code. Only an object already loaded is pinned (RTLD_NOLOAD): linked
 * into an executable (the OOM host) it opens nothing. */
void eip_pin_self(void);

#endif
