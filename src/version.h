#ifndef EIP_VERSION_H
#define EIP_VERSION_H
/* The one place the version lives; the Lua layer reads it as eip.core._VERSION. */
#define EIP_VERSION "0.1.0"
#endif
