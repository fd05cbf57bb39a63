-- Construction of bandwidth and EIP records in the shape the EIP API answers with.
local json = require "eip.emulator.server.json"
local store = require "eip.emulator.server.store"
local util = require "eip.emulator.server.util"

local M = {}

-- Addresses come from TEST-NET-2 (198.51.100.0/24 and up), numbered by the store sequence, so
-- they are unique per instance and can never be mistaken for a real public address.
local function synth_address()
  local n = store.next_seq()
  return string.format("198.51.%d.%d", 100 + math.floor(n / 254) % 156, n % 254 + 1)
end

-- IPv6 addresses from the documentation prefix 2001:db8::/32, numbered like the IPv4 ones.
local function synth_address_v6()
  return string.format("2001:db8::%x", store.next_seq())
end

-- A PublicipInfoResp entry for EIP publicip_id; ip_version 6 makes an IPv6 port of a
-- dual-stack shared bandwidth (removing it needs publicip_type "5_dualStack").
function M.new_eip(publicip_id, publicip_type, ip_version)
  if ip_version == 6 then
    return { publicip_id = publicip_id, publicipv6_address = synth_address_v6(), ip_version = 6,
      publicip_type = publicip_type or "5_dualStack" }
  end
  return {
    publicip_id = publicip_id,
    publicip_address = synth_address(),
    ip_version = 4,
    publicip_type = publicip_type or "5_bgp",
  }
end

-- A BandwidthResp. f: project_id, name, size, share_type (WHOLE|PER), and optionally id,
-- publicip_info, charge_mode, enterprise_project_id, status, bandwidth_type, billing_info.
function M.new_bandwidth(f)
  local now = util.now_iso()
  local shared = f.share_type == "WHOLE"
  return {
    id = f.id or util.uuid(),
    name = f.name,
    size = f.size,
    share_type = f.share_type,
    -- Real shared bandwidths report "share"; dedicated ones report their line type.
    bandwidth_type = f.bandwidth_type or (shared and "share" or "bgp"),
    charge_mode = f.charge_mode or "bandwidth",
    -- Prepaid bandwidths carry their order in billing_info; pay-per-use ones an empty string (the
    -- API's examples: create-shared-bandwidth, update-bandwidth), which a client must not take
    -- for an order.
    billing_info = f.billing_info or "",
    enterprise_project_id = f.enterprise_project_id or "0",
    tenant_id = f.project_id,
    status = f.status or "NORMAL",
    publicip_info = json.array(f.publicip_info or {}),
    enable_bandwidth_rules = false,
    rule_quota = 0,
    bandwidth_rules = json.array(),
    public_border_group = "center",
    created_at = now,
    updated_at = now,
  }
end

-- The dedicated bandwidth an EIP gets when it leaves a shared one (as the real service does).
function M.dedicated_for(eip, project_id, size, charge_mode)
  return M.new_bandwidth{
    project_id = project_id,
    name = "bandwidth-" .. eip.publicip_id:sub(1, 8),
    size = size,
    share_type = "PER",
    charge_mode = charge_mode,
    publicip_info = { eip },
  }
end

return M
