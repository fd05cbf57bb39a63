-- Private nginx instances for the specs: the runner the emulator ships with
-- (lua/eip/emulator/nginx.lua, module eip.emulator.nginx). See that file for its interface.
return require "eip.emulator.nginx"
