-- The EIP emulator for the specs: the shipped one (lua/eip/emulator/, module eip.emulator),
-- under the name the specs have always used. See lua/eip/emulator/init.lua for its interface.
return require "eip.emulator"
