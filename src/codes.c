/* codes.c - the static Huawei Cloud error-code table for lua-eip.
 *
 * Provenance. Two sources, copied here (nothing reads them at build or test time):
 *  - the EIP API reference's page "错误码" (error codes, zh-cn): all 60 rows of its table,
 *    message, description and handling byte for byte (the message's own oddities kept:
 *    "VPC does not active，please try later." with a full-width comma, the double space in
 *    "Policy doesn't allow  to be performed", the placeholder in "Rules on xx by **").
 *    The page lost its merged module cells: a row without a module belongs to the module of
 *    the row above it. Two rows give two statuses, "500409" (VPC.0304) and "404/500"
 *    (VPC.0514 when updating an EIP); each becomes two rows here, one per status.
 *    spec/fixtures/error-codes.tsv holds the same 60 rows, and spec/codes_spec.lua checks that
 *    every one of them is here.
 *  - the API gateway codes that answer before the request reaches EIP, under both prefixes
 *    (APIGW., and APIG. on newer gateways): 0101 no such API (404), 0301 incorrect IAM
 *    authentication information (401), 0308 throttling (429), with the messages and Chinese
 *    descriptions of the official API gateway error-code list. These three are the ones the
 *    project's reference notes name; other gateway codes (0201 request errors, 0302-0307 other
 *    authentication failures) are left out until someone meets them.
 *
 * module is the page's module in English: common (公共), create EIP (申请弹性公网IP), show EIP,
 * list EIPs, delete EIP, update EIP, show bandwidth (查询带宽), list bandwidths, update
 * bandwidth, create shared bandwidth, add or remove EIPs of a shared bandwidth
 * (共享带宽插入/移除弹性公网IP), show quotas (查询配额); and "API gateway".
 *
 * Order. Codes by prefix (VPC, EIP, APIGW, APIG), then by number; the rows of one code are
 * adjacent, in the page's order (for a split row, the statuses as the page writes them). A
 * lookup by status takes the first row with that status; without one, the first row of the
 * status's class (4xx, 5xx), else the code's first row. The class decides what a code means
 * where its rows differ: a 503 VPC.0514 is its 500 (backend), not its first row, the 409
 * (quota, the create EIP's); a 429 VPC.0504 its 404 (not found), not its 500 (the create
 * EIP's FloatIp is null). Lookups are linear: 68 short strings, and the lengths are compared
 * first.
 *
 * transient: 1 only where the documentation itself says the same request works later.
 *  - VPC.0004 (400, "VPC does not active，please try later."; handling "请稍后重试": retry
 *    later): the VPC is in transition. The project's notes on the real cloud say so too.
 *  - VPC.0512 (409 in delete EIP and update EIP, "Resource status is busy, try it again
 *    later."; "请稍后重试"): the resource is busy with another operation.
 *  - APIGW.0308 / APIG.0308 (429): Huawei's advice is to wait 2-5 s and send again.
 *  Not transient, although the handling mentions it:
 *  - VPC.0514 / VPC.0532 (409, "No more IP addresses available on network."; handling "请先
 *    释放未绑定的弹性公网IP或稍后重试", release unbound EIPs first, or retry later): a region's
 *    exhausted address pool does not refill in the seconds a retry policy waits. The first
 *    remedy is the operator's (release EIPs); "later" stays in the advice, as minutes to hours.
 *  Not transient either: the backend rows (Neutron errors, internal errors). Their handling is
 *  "check the service / contact support", not "try later"; all but VPC.0514's 404 come with
 *  a 500, which the status-level retry policy already handles.
 *
 * kind, transient and advice are ours, written for a script that deletes shared bandwidths;
 * advice sharpens the page's handling and never contradicts it. Where a code's rows differ in
 * meaning, so do their kinds: VPC.0304 is "backend" as 500 and "conflict" as 409.
 */
#include "codes.h"

#include <string.h>

#define NOT_FOUND EIP_KIND_NOT_FOUND
#define AUTH EIP_KIND_AUTH
#define PERMISSION EIP_KIND_PERMISSION
#define CONFIG EIP_KIND_CONFIG
#define INVALID EIP_KIND_INVALID_INPUT
#define CONFLICT EIP_KIND_CONFLICT
#define QUOTA EIP_KIND_QUOTA
#define BUSY EIP_KIND_BUSY
#define THROTTLED EIP_KIND_THROTTLED
#define BACKEND EIP_KIND_BACKEND
#define TRANSIENT 1

/* The API gateway's rows, written once for both prefixes (official API gateway error-code
 * list: message and Chinese description; its handling is a link to other pages, so
 * handling_zh is ""). 0308's message is the one the gateway sends, with the limit in it. */
#define GATEWAY_ROWS(prefix) \
    {prefix ".0101", 404, "API gateway", \
     "The API does not exist or has not been published in the environment.", \
     "API不存在或未发布到环境", \
     "", \
     CONFIG, 0, \
     "No such API at this endpoint: check the endpoint (region), the path and the method. The " \
     "request never reached the EIP service, so the bandwidth may well exist: never count this " \
     "404 as deleted; do not retry."}, \
    {prefix ".0301", 401, "API gateway", \
     "Incorrect IAM authentication information.", \
     "IAM认证信息错误", \
     "", \
     AUTH, 0, \
     "Bad token or AK/SK signature (the text after the colon says which, e.g. verify aksk " \
     "signature fail, decrypt token fail, token expires): check the keys, the clock (X-Sdk-Date " \
     "within 15 minutes) and the signed Host, or get a new token; never retry in a loop: 5 " \
     "failed signatures in a row lock the AK/SK pair for 5 minutes."}, \
    {prefix ".0308", 429, "API gateway", \
     "The throttling threshold has been reached: policy user over ratelimit,limit:XX,time:1 " \
     "second", \
     "超出流控值限制", \
     "", \
     THROTTLED, TRANSIENT, \
     "Transient: the caller's rate limit was hit: wait 2 to 5 s (or Retry-After) and send again, " \
     "and lower the script's request rate or concurrency."}

/* Grouped by code (see Order above): eip_code_rows relies on it, and the tests check it. */
static const eip_code_info table[] = {
    /* code, status, module,
     *   message,
     *   description_zh,
     *   handling_zh,
     *   kind, transient,
     *   advice */
    {"VPC.0002", 400, "common",
     "Available zone Name is null.",
     "可用区为空",
     "请确认创建子网的请求体中availability_zone字段是否为空",
     INVALID, 0,
     "The availability zone is missing: set availability_zone in the request body (a subnet "
     "request; a bandwidth delete never sends one); do not retry unchanged."},
    {"VPC.0003", 404, "common",
     "VPC does not exist.",
     "VPC不存在",
     "请确认VPC的id是否填写正确或该租户下是否确实存在该VPC",
     NOT_FOUND, 0,
     "The VPC does not exist: check the VPC id and that it belongs to this project and region; "
     "this is not the bandwidth's absence; do not retry."},
    {"VPC.0004", 400, "common",
     "VPC does not active，please try later.",
     "VPC状态异常",
     "请稍后重试或联系技术支持",
     BUSY, TRANSIENT,
     "Transient: the VPC is not active yet (being created or changed): retry later with backoff; "
     "if it lasts for minutes, contact support with the message and the X-Request-Id."},
    {"VPC.0007", 400, "common",
     "urlTenantId is not equal tokenTenantId",
     "tenantID不一致",
     "url里的tenant_id和token中解析到的tenant_id不一致",
     CONFIG, 0,
     "The project in the URL is not the credentials' project: check project_id and region (a token "
     "is scoped to one project); do not retry unchanged."},
    {"VPC.0008", 401, "common",
     "Invalid token in the header.",
     "token非法",
     "请确认请求头中的token是否合法",
     AUTH, 0,
     "The token in X-Auth-Token is invalid or expired: get a new token and send the request again "
     "once; do not retry in a loop."},
    {"VPC.0009", 401, "common",
     "real-name authentication fail.",
     "实名认证失败",
     "请联系技术支持",
     PERMISSION, 0,
     "The account has not passed real-name authentication: complete it in the console or contact "
     "support; new credentials or a retry will not help."},
    {"VPC.0010", 403, "common",
     "Rules on xx by ** disallowed by policy",
     "调用底层权限不足",
     "请赋予正确的细粒度权限",
     PERMISSION, 0,
     "An IAM policy denies the action: grant the user a fine-grained policy that allows it (for a "
     "delete, the bandwidth delete action), then send again; do not retry unchanged."},
    {"VPC.0011", 400, "common",
     "EnterpriseProjectId is invalid",
     "企业项目id非法",
     "输入合法的企业项目id",
     INVALID, 0,
     "The enterprise_project_id is not valid: pass the id of an existing enterprise project; do "
     "not retry unchanged."},
    {"VPC.0011", 400, "create EIP",
     "EnterpriseProjectId is invalid.",
     "企业项目id不是合法的UUID",
     "请确认传入的企业项目id参数值是否为合法的UUID",
     INVALID, 0,
     "The enterprise_project_id is not a valid UUID: fix its format; do not retry unchanged."},
    {"VPC.0012", 404, "create EIP",
     "Requested resources not found.",
     "企业项目id不存在",
     "请确认该租户下是否存在该id对应的企业项目",
     NOT_FOUND, 0,
     "The enterprise project does not exist in this account: check enterprise_project_id; this is "
     "not the bandwidth's absence; do not retry."},
    {"VPC.0014", 400, "common",
     "This enterpriseProject status is disable.",
     "企业项目不可用",
     "更换其他可用企业项目id",
     INVALID, 0,
     "The enterprise project is disabled: use the id of an enabled enterprise project (or enable "
     "this one); do not retry unchanged."},
    {"VPC.0301", 400, "create EIP",
     "Bandwidth name or share_type is invalid.",
     "创建弹性公网IP时，带宽参数错误",
     "请检查传入的带宽参数值是否合法",
     INVALID, 0,
     "A bandwidth parameter (name, share_type, size) is invalid: check the values against the API "
     "reference; do not retry unchanged."},
    {"VPC.0301", 400, "show bandwidth",
     "getBandwidth error bandwidthId is invalid.",
     "带宽参数错误",
     "请确认带宽的id是否合法",
     INVALID, 0,
     "The bandwidth id is not valid: check it (a UUID, as listed by the API or the console); do "
     "not retry unchanged."},
    {"VPC.0301", 400, "list bandwidths",
     "Get bandwidths error limit is invalid.",
     "带宽参数错误",
     "请根据实际返回的Error Message参考接口文档检查传入的参数值是否合法",
     INVALID, 0,
     "A list parameter is invalid (here limit): check limit, marker and share_type against the API "
     "reference; do not retry unchanged."},
    {"VPC.0301", 400, "update bandwidth",
     "updateBandwidth input param is invalid.",
     "带宽参数错误",
     "请根据实际返回的Error Message参考接口文档检查传入的参数值是否合法",
     INVALID, 0,
     "An update parameter is invalid: check the values the message names (name, size) against the "
     "API reference; do not retry unchanged."},
    {"VPC.0301", 400, "add or remove EIPs of a shared bandwidth",
     "Invalid publicip_id",
     "无效的publicip_id",
     "请检查publicip_info里面的publicip_id是否合法",
     INVALID, 0,
     "A publicip_id in publicip_info is invalid: check each id; do not retry unchanged."},
    {"VPC.0302", 500, "show bandwidth",
     "Neutron Error.",
     "底层异常",
     "请确认NEUTRON服务是否正常或联系技术支持",
     BACKEND, 0,
     "The network backend (Neutron) failed: if it persists after the usual 5xx retries, contact "
     "support with the message and the X-Request-Id."},
    {"VPC.0302", 500, "list bandwidths",
     "Neutron Error.",
     "底层异常",
     "请确认NEUTRON服务是否正常或联系技术支持",
     BACKEND, 0,
     "The network backend (Neutron) failed: if it persists after the usual 5xx retries, contact "
     "support with the message and the X-Request-Id."},
    {"VPC.0302", 500, "update bandwidth",
     "Neutron Error.",
     "带宽获取底层资源异常",
     "请确认NEUTRON服务是否正常或联系技术支持",
     BACKEND, 0,
     "The bandwidth's backend resources could not be read (Neutron): if it persists after the "
     "usual 5xx retries, contact support with the message and the X-Request-Id."},
    /* The page: status "500409", i.e. 500 or 409, one message for both. */
    {"VPC.0304", 500, "common",
     "createBandwidth error.NO QUOTAS for shareBandwidthIP!Query routers fail.",
     "带宽操作内部异常",
     "请根据实际返回的Error Message联系技术支持处理",
     BACKEND, 0,
     "A bandwidth operation failed inside the service (the message names the step): contact "
     "support with the message and the X-Request-Id."},
    {"VPC.0304", 409, "common",
     "createBandwidth error.NO QUOTAS for shareBandwidthIP!Query routers fail.",
     "带宽操作内部异常",
     "请根据实际返回的Error Message联系技术支持处理",
     CONFLICT, 0,
     "The bandwidth's state refuses the operation and the message says why (e.g. no quota left for "
     "EIPs in a shared bandwidth, or a delete of one that still holds EIPs: remove them first): "
     "fix that state, or contact support with the message and the X-Request-Id."},
    {"VPC.0305", 500, "update bandwidth",
     "updateBandwidth error.",
     "更新带宽内部异常",
     "请联系技术支持",
     BACKEND, 0,
     "The bandwidth update failed inside the service: read the bandwidth to see what was applied, "
     "then contact support with the message and the X-Request-Id."},
    {"VPC.0306", 404, "show bandwidth",
     "No Eip bandwidth exist with id.",
     "带宽对象不存在",
     "所查询的带宽对象不存在",
     NOT_FOUND, 0,
     "The bandwidth does not exist (already deleted?): check the id, project and region; a delete "
     "with missing_ok takes this as success for an id shaped like one (a lower-case UUID)."},
    {"VPC.0306", 404, "list bandwidths",
     "No Eip bandwidth exist with id.",
     "带宽对象不存在",
     "所查询的带宽对象不存在",
     NOT_FOUND, 0,
     "The marker names no bandwidth (deleted meanwhile?): list again from the start or from "
     "another marker."},
    {"VPC.0310", 400, "create shared bandwidth",
     "NO QUOTAS for shareBandwidth!",
     "共享带宽配额不足",
     "请删除不使用的共享带宽或联系技术支持",
     QUOTA, 0,
     "The shared bandwidth quota is used up: delete shared bandwidths that are not needed, or ask "
     "support for a higher quota; do not retry unchanged."},
    {"VPC.0323", 400, "add or remove EIPs of a shared bandwidth",
     "publicIp can not be operate with this bandwidth",
     "共享带宽无法插入/移除弹性公网IP",
     "请检查共享带宽或者弹性公网IP的状态是否正常",
     CONFLICT, 0,
     "An EIP cannot be added to or removed from this bandwidth in its current state: check that "
     "the bandwidth and the EIPs are NORMAL (not frozen), that each EIP is in (or free for) this "
     "bandwidth, and that IPv6 entries carry publicip_type 5_dualStack; do not retry unchanged."},
    {"VPC.0501", 400, "create EIP",
     "Bandwidth share_type is invalid.",
     "弹性公网IP参数错误",
     "请根据实际返回的Error Message参考接口文档检查传入的参数值是否合法",
     INVALID, 0,
     "An EIP parameter is invalid (here share_type): check the values the message names against "
     "the API reference; do not retry unchanged."},
    {"VPC.0501", 400, "show EIP",
     "Invalid floatingip_id.",
     "弹性公网IP参数错误",
     "请确认弹性公网IP的id是否合法",
     INVALID, 0,
     "The EIP id is not valid: check it (a UUID); do not retry unchanged."},
    {"VPC.0501", 400, "list EIPs",
     "Invalid limit.",
     "弹性公网IP参数错误",
     "请根据实际返回的Error Message参考接口文档检查传入的参数值是否合法",
     INVALID, 0,
     "A list parameter is invalid (here limit): check the values the message names against the API "
     "reference; do not retry unchanged."},
    {"VPC.0501", 400, "delete EIP",
     "Invalid param.",
     "弹性公网IP参数错误",
     "请联系技术支持",
     INVALID, 0,
     "A parameter of the delete was refused: check the EIP id; if it is right, contact support "
     "with the message and the X-Request-Id."},
    {"VPC.0501", 400, "update EIP",
     "Port id is invalid.",
     "弹性公网IP参数错误",
     "请确认port的id是否合法",
     INVALID, 0,
     "The port id is not valid: check it; do not retry unchanged."},
    {"VPC.0502", 403, "create EIP",
     "Tenant status is op_restricted.",
     "用户受限，不允许申请弹性公网IP",
     "请确认帐户是否余额不足或被冻结",
     PERMISSION, 0,
     "The account is restricted (in arrears or frozen) and may not create EIPs: settle the balance "
     "or have the freeze lifted; do not retry."},
    {"VPC.0503", 500, "create EIP",
     "Creating publicIp failed.",
     "创建弹性公网IP失败",
     "请联系技术支持",
     BACKEND, 0,
     "The service failed to create the EIP: contact support with the message and the X-Request-Id, "
     "and list the EIPs before trying again so that none is created twice."},
    {"VPC.0504", 500, "create EIP",
     "FloatIp is null.",
     "未找到弹性公网IP，申请失败",
     "请联系技术支持",
     BACKEND, 0,
     "The service lost the EIP it was creating: contact support with the message and the "
     "X-Request-Id, and list the EIPs before trying again."},
    {"VPC.0504", 404, "show EIP",
     "Floating IP could not be found.",
     "未找到弹性公网IP",
     "请确认传入的弹性公网IP的id是否正确",
     NOT_FOUND, 0,
     "The EIP does not exist (released?): check the id, project and region; do not retry."},
    {"VPC.0504", 404, "delete EIP",
     "Floating IP could not be found.",
     "未找到弹性公网IP",
     "请确认传入的弹性公网IP的id是否正确",
     NOT_FOUND, 0,
     "The EIP does not exist (already released?): check the id, project and region; do not retry."},
    {"VPC.0504", 404, "update EIP",
     "Floating IP could not be found.",
     "未找到弹性公网IP",
     "请确认传入的弹性公网IP的id是否正确",
     NOT_FOUND, 0,
     "The EIP does not exist (released?): check the id, project and region; do not retry."},
    {"VPC.0508", 500, "create EIP",
     "Port is invalid.",
     "未找到port相关资源",
     "请联系技术支持",
     BACKEND, 0,
     "The service found no port resource for the EIP: check the port id if one was given, else "
     "contact support with the message and the X-Request-Id."},
    {"VPC.0509", 500, "update EIP",
     "Floating ip double status is invalid.",
     "port已经绑定弹性公网IP",
     "请先将该端口与其他弹性公网IP解绑定",
     CONFLICT, 0,
     "The port is already bound to another EIP: unbind that EIP from the port first; do not retry "
     "unchanged."},
    {"VPC.0510", 409, "create EIP",
     "Floatingip has already associated with port.",
     "弹性公网IP已经绑定其他虚拟机",
     "请先将该弹性公网IP与其他虚拟机解绑定",
     CONFLICT, 0,
     "The EIP is already bound to another instance: unbind it from that instance first; do not "
     "retry unchanged."},
    {"VPC.0510", 409, "update EIP",
     "Floatingip has already associated with port.",
     "弹性公网IP已经绑定其他虚拟机",
     "请先将该弹性公网IP与其他虚拟机解绑定",
     CONFLICT, 0,
     "The EIP is already bound to another instance: unbind it from that instance first; do not "
     "retry unchanged."},
    {"VPC.0511", 409, "create EIP",
     "Port has already associated with floatingip.",
     "port已经绑定弹性公网IP",
     "请先将该端口与其他弹性公网IP解绑定",
     CONFLICT, 0,
     "The port already has an EIP: unbind that EIP from the port first; do not retry unchanged."},
    {"VPC.0511", 409, "update EIP",
     "Port has already associated with floatingip.",
     "虚拟机已经绑定弹性公网IP，不能再绑定",
     "请先将该虚拟机与其他弹性公网IP解绑定",
     CONFLICT, 0,
     "The instance already has an EIP and cannot take another: unbind that EIP first; do not retry "
     "unchanged."},
    {"VPC.0512", 409, "delete EIP",
     "Resource status is busy, try it again later.",
     "弹性公网IP状态异常",
     "请稍后重试或联系技术支持",
     BUSY, TRANSIENT,
     "Transient: the EIP is busy with another operation: retry later with backoff; if it stays "
     "busy for minutes, contact support with the message and the X-Request-Id."},
    {"VPC.0512", 409, "update EIP",
     "Resource status is busy, try it again later.",
     "弹性公网IP状态异常",
     "请稍后重试或联系技术支持",
     BUSY, TRANSIENT,
     "Transient: the EIP is busy with another operation: retry later with backoff; if it stays "
     "busy for minutes, contact support with the message and the X-Request-Id."},
    {"VPC.0513", 500, "delete EIP",
     "getElementByKey error.",
     "未找到网络资源",
     "请联系技术支持",
     BACKEND, 0,
     "The service could not find the EIP's network resources: contact support with the message and "
     "the X-Request-Id."},
    {"VPC.0514", 409, "create EIP",
     "No more IP addresses available on network.",
     "IP资源池占满，无法分配新IP",
     "请先释放未绑定的弹性公网IP或稍后重试",
     QUOTA, 0,
     "The region's IP pool is exhausted: release unbound EIPs, or try again much later (minutes to "
     "hours, not a quick retry)."},
    {"VPC.0514", 500, "show EIP",
     "Neutron Error.",
     "底层异常",
     "请确认NEUTRON服务是否正常或联系技术支持",
     BACKEND, 0,
     "The network backend (Neutron) failed: if it persists after the usual 5xx retries, contact "
     "support with the message and the X-Request-Id."},
    /* The page: status "404/500". */
    {"VPC.0514", 404, "update EIP",
     "Neutron Error.",
     "底层异常",
     "请确认NEUTRON服务是否正常或联系技术支持",
     BACKEND, 0,
     "The network backend (Neutron) did not find a resource the update names: check the port and "
     "EIP ids, then contact support with the message and the X-Request-Id."},
    {"VPC.0514", 500, "update EIP",
     "Neutron Error.",
     "底层异常",
     "请确认NEUTRON服务是否正常或联系技术支持",
     BACKEND, 0,
     "The network backend (Neutron) failed: if it persists after the usual 5xx retries, contact "
     "support with the message and the X-Request-Id."},
    {"VPC.0516", 500, "delete EIP",
     "Publicip is in used by ELB.",
     "弹性公网IP被ELB使用，删除失败",
     "请先将该弹性公网IP与ELB解绑定",
     CONFLICT, 0,
     "The EIP is in use by a load balancer (ELB): unbind it from the ELB first; do not retry "
     "unchanged."},
    {"VPC.0517", 409, "delete EIP",
     "Floatingip has associated with port, please disassociate it firstly.",
     "弹性公网IP绑定虚拟机，删除失败",
     "请先将该弹性公网IP与ECS解绑定",
     CONFLICT, 0,
     "The EIP is bound to an instance (ECS): unbind it first; do not retry unchanged."},
    {"VPC.0518", 500, "delete EIP",
     "Public IP has firewall rules.",
     "弹性公网IP被网络ACL使用，删除失败",
     "请联系技术支持",
     CONFLICT, 0,
     "The EIP is still used by network ACL (firewall) rules: remove those rules, else contact "
     "support with the message and the X-Request-Id; do not retry unchanged."},
    {"VPC.0521", 409, "create EIP",
     "Quota exceeded for resources: ['floatingip'].",
     "EIP配额不足",
     "请先释放未绑定的弹性公网IP或申请扩大弹性公网IP资源的配额值",
     QUOTA, 0,
     "The EIP quota is used up: release unbound EIPs or ask for a higher EIP quota; do not retry "
     "unchanged."},
    {"VPC.0522", 409, "create EIP",
     "The IP address is in use.",
     "IP格式不合法或者IP被占用",
     "请确认IP格式是否合法或更换其他IP地址",
     CONFLICT, 0,
     "The requested IP address is malformed or already in use: check its format or ask for another "
     "address; do not retry unchanged."},
    {"VPC.0525", 409, "delete EIP",
     "The FloatingIp is billing, can not delete.",
     "包周期EIP不支持直接删除",
     "请进行退订操作",
     CONFLICT, 0,
     "A yearly/monthly (prepaid) EIP cannot be deleted by the API: unsubscribe it in Billing "
     "instead; do not retry."},
    {"VPC.0531", 400, "create EIP",
     "invalid value: period_type or period_num.",
     "创建包周期EIP参数错误",
     "请确认传入的参数period_type或者period_num是否合法",
     INVALID, 0,
     "period_type or period_num of a yearly/monthly EIP is invalid: fix them; do not retry "
     "unchanged."},
    {"VPC.0532", 409, "create EIP",
     "No more IP addresses available on network.",
     "IP资源池占满，无法分配新IP",
     "请先释放未绑定的弹性公网IP或稍后重试",
     QUOTA, 0,
     "The region's IP pool is exhausted: release unbound EIPs, or try again much later (minutes to "
     "hours, not a quick retry)."},
    {"VPC.1207", 400, "show quotas",
     "resource type is invalid.",
     "指定的类型不存在",
     "请使用已存在的正确类型。",
     INVALID, 0,
     "The quota resource type does not exist: use one of the documented types; do not retry "
     "unchanged."},
    {"VPC.2201", 403, "common",
     "Policy doesn't allow  to be performed",
     "细粒度权限不足",
     "请赋予正确的细粒度权限",
     PERMISSION, 0,
     "The user's fine-grained policies do not allow the action: grant one that does (for a delete, "
     "the bandwidth delete action), then send again; do not retry unchanged."},
    {"VPC.2701", 403, "common",
     "Token not allowed to do this action.",
     "无权操作，或帐户余额不足",
     "请确认帐户是否余额不足或被冻结",
     PERMISSION, 0,
     "Not allowed: the account may be in arrears or frozen, or the user may lack the permission: "
     "check the balance and the account's state, then the IAM policy; do not retry unchanged."},
    {"EIP.7901", 400, "create EIP",
     "Input param is invalid.",
     "无效的请求体",
     "1.检查json格式2.按message提示检查取值范围",
     INVALID, 0,
     "The request body is invalid: check that it is well-formed JSON, then the value ranges the "
     "message names; do not retry unchanged."},
    /* API gateway, both prefixes: APIGW. (older) and APIG. (newer gateways), same rows. */
    GATEWAY_ROWS("APIGW"),
    GATEWAY_ROWS("APIG"),
};

#define TABLE_LEN (sizeof table / sizeof table[0])

static int same_code(const eip_code_info *row, const char *code, size_t len)
{
    return strlen(row->code) == len && memcmp(row->code, code, len) == 0;
}

const eip_code_info *eip_code_rows(const char *code, size_t len, size_t *n)
{
    size_t i, j;

    if (n)
        *n = 0;
    if (!code || len == 0)
        return NULL;
    for (i = 0; i < TABLE_LEN; i++) {
        if (!same_code(&table[i], code, len))
            continue;
        for (j = i + 1; j < TABLE_LEN && same_code(&table[j], code, len); j++)
            ;
        if (n)
            *n = j - i;
        return &table[i];
    }
    return NULL;
}

const eip_code_info *eip_code_lookup(const char *code, size_t len, int status)
{
    size_t i, n;
    const eip_code_info *first = eip_code_rows(code, len, &n);
    const eip_code_info *same_class = NULL;

    if (!first || status <= 0)
        return first;
    for (i = 0; i < n; i++) {
        if (first[i].status == status)
            return &first[i];
        if (!same_class && first[i].status / 100 == status / 100)
            same_class = &first[i];
    }
    return same_class ? same_class : first;
}

const char *eip_code_kind_name(eip_code_kind kind)
{
    switch (kind) {
    case EIP_KIND_NOT_FOUND:     return "not_found";
    case EIP_KIND_AUTH:          return "auth";
    case EIP_KIND_PERMISSION:    return "permission";
    case EIP_KIND_CONFIG:        return "config";
    case EIP_KIND_INVALID_INPUT: return "invalid_input";
    case EIP_KIND_CONFLICT:      return "conflict";
    case EIP_KIND_QUOTA:         return "quota";
    case EIP_KIND_BUSY:          return "busy";
    case EIP_KIND_THROTTLED:     return "throttled";
    case EIP_KIND_BACKEND:       return "backend";
    }
    return "unknown"; /* a value cast from an out-of-range int */
}

size_t eip_code_count(void)
{
    return TABLE_LEN;
}

const eip_code_info *eip_code_at(size_t i)
{
    return i < TABLE_LEN ? &table[i] : NULL;
}
