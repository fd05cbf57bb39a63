/* status.c - the static HTTP status table for lua-eip.
 *
 * Provenance. The table is the union of the status tables in the four seed documents:
 *   000  EIP DeleteSharedBandwidth  204, 400-401, 403-409, 500-504   (Chinese descriptions)
 *   001  CCI                        100-101, 200-206, 300-306, 400-417, 422, 429, 500-505
 *   003  NAT                        200, 201, 204, 400-401, 403-409, 500-504
 *   004  EVS                        200-202, 204, 400-401, 403-409, 413, 415, 500-504
 * (No seed but CCI lists 402, although the digest summarises the others as "400-409".)
 * `seeds` records every seed a code appears in.
 *
 * reason is the RFC 9110 phrase (RFC 6585 for 429), so 413 is "Content Too Large", 414 "URI
 * Too Long", 416 "Range Not Satisfiable" and 422 "Unprocessable Content". 306 is written
 * "(Unused)" in RFC 9110; the parentheses only say the code is retired, so reason is "Unused".
 * seed_name keeps a seed's own name where it differs byte for byte from reason (CCI's
 * "ServerTimeout" for 504, EVS's "overLimit"/"badMediaType"). 413 has two: EVS's "overLimit"
 * is kept; CCI calls it "Request Entity Too Large", the pre-RFC 9110 phrase.
 *
 * description_zh is copied verbatim, preferring seed 000, then the EIP reference status page
 * (huaweicloud-eip-docs/status-codes.md, which alone gives 200 and 201 an EIP text), then 003,
 * then 001 (multi-paragraph cells joined without a separator, as Chinese sentences end in "。").
 * EVS (004) has names only, no Chinese text. description and advice are ours, written for a
 * script that deletes shared bandwidths.
 *
 * The table keeps facts (reason, class, descriptions, seeds) and advice for a person; whether
 * a status is retried is decided in one place, the Lua retry policy (lua/eip/retry.lua), which
 * also sees what this table cannot: the error code in the body (409 VPC.0512 "busy") and the
 * transport's failure. The advice texts agree with that policy.
 *
 * 503's advice. CCI (001) says of 503 "建议直接修改该请求，不要重试该请求" (fix the request, do
 * not retry). EIP's own pages (seed 000 and the status page) say "系统暂时异常", a temporary
 * system fault. This client talks to EIP, and DELETE is idempotent, so EIP wins: the advice is
 * to retry with backoff.
 */
#include "status.h"

#include <stdlib.h>

#define S000 EIP_SEED_000_EIP
#define S001 EIP_SEED_001_CCI
#define S003 EIP_SEED_003_NAT
#define S004 EIP_SEED_004_EVS
#define SALL (S000 | S001 | S003 | S004)

#define INFO EIP_CLASS_INFORMATIONAL
#define OK2 EIP_CLASS_SUCCESS
#define REDIR EIP_CLASS_REDIRECT
#define CLIENT EIP_CLASS_CLIENT_ERROR
#define SERVER EIP_CLASS_SERVER_ERROR

/* Sorted by code: eip_status_lookup relies on it (bsearch), and the tests check it. */
static const eip_status_info table[] = {
    /* code, reason, seed_name,
     *   description, description_zh,
     *   class, advice, seeds */
    {100, "Continue", NULL,
     "Interim response: the server has the request headers and the client may send the body.",
     "继续请求。这个临时响应用来通知客户端，它的部分请求已经被服务器接收，且仍未被拒绝。",
     INFO,
     "Interim answer normally consumed by the HTTP library; if it surfaces as final, report the "
     "transport fault instead of retrying.",
     S001},
    {101, "Switching Protocols", NULL,
     "The server agrees to switch to the protocol named in the request's Upgrade header.",
     "切换协议。只能切换到更高级的协议。例如，切换到HTTP的新版本协议。",
     INFO,
     "The EIP API never upgrades protocols: lua-eip reports a 101 as a transport protocol error "
     "(curl 1); check the endpoint and any proxy in between, do not retry.",
     S001},
    {200, "OK", NULL,
     "The request succeeded; GET, PUT and POST return their result in the body.",
     "GET、PUT、POST操作正常返回",
     OK2,
     "Success for a read or a create: read the body. A delete is done only on 204: lua-eip "
     "reports a 200 to one as an unusable answer; check the bandwidth with GET.",
     S001 | S003 | S004},
    {201, "Created", NULL,
     "The request succeeded and created a resource (POST, e.g. an IAM token or a bandwidth).",
     "OpenStack Neutron API的POST操作正常返回",
     OK2,
     "Success: the resource was created (an IAM token comes in X-Subject-Token); nothing to "
     "retry.",
     S001 | S003 | S004},
    {202, "Accepted", NULL,
     "The request was accepted but its processing has not finished yet.",
     "已经接受请求，但未处理完成。",
     OK2,
     "Accepted, not finished (lua-eip reports it as an unusable answer, never as deleted): poll "
     "the bandwidth with GET until it is gone instead of resending the delete.",
     S001 | S004},
    {203, "Non-Authoritative Information", NULL,
     "Success, but a transforming proxy altered the origin server's response.",
     "非授权信息，请求成功。",
     OK2,
     "A proxy between the script and the endpoint altered the answer: look for it. A delete is "
     "done only on 204: check the bandwidth with GET.",
     S001},
    {204, "No Content", "NoContent",
     "The request succeeded and the response has no body; EIP answers a successful DELETE with "
     "204.",
     "DELETE操作正常返回",
     OK2,
     "Success: the shared bandwidth is deleted; do not send the delete again.",
     SALL},
    {205, "Reset Content", NULL,
     "Success; the client should reset the view that sent the request.",
     "重置内容，服务器处理成功。",
     OK2,
     "Not an answer of the EIP API: check the endpoint and proxies. A delete is done only on 204: "
     "check the bandwidth with GET.",
     S001},
    {206, "Partial Content", NULL,
     "The server sent only the byte range(s) the request asked for.",
     "服务器成功处理了部分GET请求。",
     OK2,
     "Unexpected without a Range header: accept it for GET only, check proxies, and do not resend "
     "a delete.",
     S001},
    {300, "Multiple Choices", NULL,
     "The resource has several representations and the client is asked to choose one.",
     "多种选择。请求的资源可包括多个位置，相应可返回一个资源特征与地址的列表用于用户终端（例如：浏览器）选择。",
     REDIR,
     "The EIP API does not redirect: check the endpoint URL (region, scheme, path); do not retry.",
     S001},
    {301, "Moved Permanently", NULL,
     "The resource has a new permanent URI, given in the Location header.",
     "永久移动，请求的资源已被永久的移动到新的URI，返回信息会包括新的URI。",
     REDIR,
     "Fix the configured endpoint (often http:// instead of https://, or a wrong host) rather "
     "than following the redirect with credentials.",
     S001},
    {302, "Found", NULL,
     "The resource is temporarily at the URI given in the Location header.",
     "资源被临时移动。",
     REDIR,
     "Check the endpoint and any proxy or captive portal; do not follow redirects with signed "
     "requests.",
     S001},
    {303, "See Other", NULL,
     "The answer is at another URI, to be fetched with GET.",
     "查看其它地址。使用GET和POST请求查看。",
     REDIR,
     "The EIP API does not redirect: check the endpoint URL and proxies; do not retry.",
     S001},
    {304, "Not Modified", NULL,
     "The cached copy is still valid (conditional GET); the response has no body.",
     "所请求的资源未修改，服务器返回此状态码时，不会返回任何资源。",
     REDIR,
     "Only meaningful for a conditional GET: reuse the cached copy; it is never expected for a "
     "delete.",
     S001},
    {305, "Use Proxy", NULL,
     "Deprecated: the resource must be reached through the proxy named in Location.",
     "所请求的资源必须通过代理访问。",
     REDIR,
     "Deprecated and unsafe to obey: configure any proxy explicitly; do not retry.",
     S001},
    {306, "Unused", NULL,
     "Reserved code, no longer used by HTTP.",
     "已经被废弃的HTTP状态码。",
     REDIR,
     "Should never be sent: report the intermediary that produced it; do not retry.",
     S001},
    {400, "Bad Request", "BadRequest",
     "The request is malformed or has invalid parameters (EIP: VPC.0301 invalid bandwidth id, "
     "VPC.0007 project differs from the token's, EIP.7901 invalid input).",
     "服务器未能处理请求",
     CLIENT,
     "Fix the request (bandwidth id, project id, body) using the error code in the body; do not "
     "retry unchanged.",
     SALL},
    {401, "Unauthorized", NULL,
     "Authentication failed: missing, expired or invalid token, or a bad AK/SK signature "
     "(APIGW.0301, VPC.0008).",
     "被请求的页面需要用户名和密码",
     CLIENT,
     "Check the credentials, the clock (X-Sdk-Date) and the signed Host, then renew the token; "
     "never retry a failed signature in a loop: 5 failures in a row lock the AK/SK pair for 5 "
     "minutes.",
     SALL},
    {402, "Payment Required", NULL,
     "Reserved by HTTP; some services use it for billing or balance problems.",
     "保留请求。",
     CLIENT,
     "Check the account's balance and billing state; do not retry.",
     S001},
    {403, "Forbidden", NULL,
     "The request is understood but refused: the IAM policy does not allow it or the account is "
     "frozen (VPC.2701, VPC.0010, VPC.2201).",
     "对被请求页面的访问被禁止",
     CLIENT,
     "Grant the IAM permission for the bandwidth action or resolve the account's state; do not "
     "retry unchanged.",
     SALL},
    {404, "Not Found", "NotFound",
     "The resource or route does not exist (EIP: VPC.0306 no such bandwidth; gateway: "
     "APIGW.0101 no such API).",
     "服务器无法找到被请求的页面",
     CLIENT,
     "Only the EIP service's 404 VPC.0306 says the bandwidth does not exist (already deleted?): "
     "check the id, project and region. A gateway's 404 (APIGW.0101) or one without an error body "
     "says the endpoint, path or method is wrong. Do not retry.",
     SALL},
    {405, "Method Not Allowed", "MethodNotAllowed",
     "The HTTP method is not supported for this resource.",
     "请求中指定的方法不被允许",
     CLIENT,
     "Fix the method and path (DELETE /v2.0/{project_id}/bandwidths/{bandwidth_id}); do not "
     "retry.",
     SALL},
    {406, "Not Acceptable", NULL,
     "The server cannot produce a response matching the request's Accept headers.",
     "服务器生成的响应无法被客户端所接受",
     CLIENT,
     "Send Accept: application/json (or no Accept header); do not retry unchanged.",
     SALL},
    {407, "Proxy Authentication Required", NULL,
     "A proxy between the client and the server requires authentication first.",
     "用户必须首先使用代理服务器进行验证，这样请求才会被处理",
     CLIENT,
     "Configure the proxy's credentials or bypass the proxy for the endpoint; do not retry "
     "unchanged.",
     SALL},
    {408, "Request Timeout", "Request Time-out",
     "The server timed out waiting for the complete request.",
     "请求超出了服务器的等待时间",
     CLIENT,
     "Retry with backoff: the same request may be sent again unchanged (a DELETE is idempotent).",
     SALL},
    {409, "Conflict", NULL,
     "The request conflicts with the resource's current state (EIP: VPC.0512 resource busy).",
     "由于冲突，请求无法被完成",
     CLIENT,
     "Not retried by status: the Lua layer retries error code VPC.0512 (busy) with backoff; for "
     "any other code fix the resource's state first.",
     SALL},
    {410, "Gone", NULL,
     "The resource existed but has been removed for good.",
     "客户端请求的资源已经不存在。返回该状态码，表明请求的资源已被永久删除。",
     CLIENT,
     "The EIP API never answers 410 (a missing bandwidth is 404 VPC.0306): something else "
     "answered (a proxy, a gateway, a wrong endpoint) and the bandwidth may still exist. Check "
     "the endpoint; do not retry.",
     S001},
    {411, "Length Required", NULL,
     "The server refuses a request that has no Content-Length.",
     "服务器无法处理客户端发送的不带Content-Length的请求信息。",
     CLIENT,
     "Send Content-Length (0 for an empty DELETE body); do not retry unchanged.",
     S001},
    {412, "Precondition Failed", NULL,
     "A condition in the request headers (If-Match, If-Unmodified-Since, ...) was false.",
     "未满足前提条件，服务器未满足请求者在请求中设置的其中一个前提条件。",
     CLIENT,
     "Refresh the resource's state and update or drop the conditional headers; do not retry "
     "unchanged.",
     S001},
    {413, "Content Too Large", "overLimit",
     "The request body is larger than the server accepts.",
     "由于请求的实体过大，服务器无法处理，因此拒绝请求。为防止客户端的连续请求，服务器可能会关闭连接。如果只是服务器暂时无法处理，则会包含一个Retry-After的响应信息。",
     CLIENT,
     "Shrink or drop the request body (a DELETE needs none); do not retry unchanged.",
     S001 | S004},
    {414, "URI Too Long", "Request-URI Too Large",
     "The request target is longer than the server will interpret.",
     "请求的URI过长（URI通常为网址），服务器无法处理。",
     CLIENT,
     "Check the path and query for a runaway id or query string; do not retry.",
     S001},
    {415, "Unsupported Media Type", "badMediaType",
     "The Content-Type of the request body is not supported.",
     "服务器无法处理请求附带的媒体格式。",
     CLIENT,
     "Send Content-Type: application/json with a JSON body (or send no body); do not retry "
     "unchanged.",
     S001 | S004},
    {416, "Range Not Satisfiable", "Requested range not satisfiable",
     "The requested byte range does not overlap the resource.",
     "客户端请求的范围无效。",
     CLIENT,
     "Drop the Range header; do not retry unchanged.",
     S001},
    {417, "Expectation Failed", NULL,
     "The server cannot meet the request's Expect header.",
     "服务器无法满足Expect的请求头信息。",
     CLIENT,
     "Stop sending Expect: 100-continue (libcurl adds it to large bodies), then send again.",
     S001},
    {422, "Unprocessable Content", "UnprocessableEntity",
     "The request is well-formed but its content is semantically invalid.",
     "请求格式正确，但是由于含有语义错误，无法响应。",
     CLIENT,
     "Fix the values named in the error body; do not retry unchanged.",
     S001},
    {429, "Too Many Requests", "TooManyRequests",
     "The client exceeded a rate limit (gateway: APIGW.0308 throttling threshold reached).",
     "表明请求超出了客户端访问频率的限制或者服务端接收到多于它能处理的请求。建议客户端读取相应的Retry-After首部，然后等待该首部指出的时间后再重试。",
     CLIENT,
     "Retry after the Retry-After delay (2 to 5 seconds when it is absent) and lower the script's "
     "request rate.",
     S001},
    {500, "Internal Server Error", "InternalServerError",
     "The server hit an unexpected error (EIP: VPC.0302 backend error).",
     "请求未完成。服务异常",
     SERVER,
     "Retry with exponential backoff (a DELETE is idempotent); if it persists, contact support "
     "with the request id.",
     SALL},
    {501, "Not Implemented", NULL,
     "The server does not support the functionality the request needs.",
     "请求未完成。服务器不支持所请求的功能",
     SERVER,
     "Check the method, the API version and whether the region offers the API; do not retry.",
     SALL},
    {502, "Bad Gateway", NULL,
     "A gateway or proxy got an invalid response from the upstream server.",
     "请求未完成。服务器从上游服务器收到一个无效的响应",
     SERVER,
     "Retry with backoff; expect an HTML or empty body from the load balancer, not JSON.",
     SALL},
    /* Advice to retry although CCI (001) says "do not retry": EIP's pages call it a temporary
     * fault (see the top of this file). */
    {503, "Service Unavailable", "ServiceUnavailable",
     "The service is temporarily unavailable (EIP: the system is temporarily abnormal), e.g. "
     "overloaded or in maintenance.",
     "请求未完成。系统暂时异常",
     SERVER,
     "Retry with backoff, honouring Retry-After when present (EIP calls this a temporary fault; "
     "CCI's advice not to retry does not apply here).",
     SALL},
    {504, "Gateway Timeout", "ServerTimeout",
     "A gateway or proxy timed out waiting for the upstream server.",
     "网关超时",
     SERVER,
     "Retry with backoff, then GET the bandwidth: the delete may have gone through, and a later "
     "404 means it is gone.",
     SALL},
    {505, "HTTP Version Not Supported", "HTTP Version not supported",
     "The server does not support the HTTP version used by the request.",
     "服务器不支持请求的HTTP协议的版本，无法完成处理。",
     SERVER,
     "Force HTTP/1.1 in the transport; do not retry unchanged.",
     S001},
};

#define TABLE_LEN (sizeof table / sizeof table[0])

/* Templates for codes in no table, one per class; code is filled in per lookup. The advice
 * for an unknown 5xx is to retry with backoff: gateways invent codes such as 520-524 for
 * transient upstream faults, and the DELETE this client sends is idempotent. */
static const eip_status_info fallback_unknown = {
    0, "Unknown Status", NULL,
    "Not a valid HTTP status (outside 100-599): a broken server, proxy or transport.",
    "", EIP_CLASS_UNKNOWN,
    "Treat as a transport failure: check the endpoint and any proxy; do not retry blindly.", 0};

static const eip_status_info fallbacks[] = {
    {0, "Unknown Informational", NULL, "Unregistered 1xx interim response.", "", INFO,
     "Not a final answer: report the endpoint's or proxy's behaviour; do not retry.", 0},
    {0, "Unknown Success", NULL, "Unregistered 2xx code: the server reports success.", "", OK2,
     "Not an answer the EIP API gives: a delete is done only on 204 No Content, so this does not say "
     "the request was carried out; confirm with a GET before relying on it.", 0},
    {0, "Unknown Redirect", NULL, "Unregistered 3xx redirect code.", "", REDIR,
     "The EIP API does not redirect: check the endpoint URL and proxies; do not retry.", 0},
    {0, "Unknown Client Error", NULL, "Unregistered 4xx code: the request was refused.", "",
     CLIENT, "Read the error code in the body and fix the request; do not retry unchanged.", 0},
    {0, "Unknown Server Error", NULL,
     "Unregistered 5xx code; gateways use codes such as 520-524 for transient upstream faults.",
     "", SERVER,
     "Retry with backoff (a DELETE is idempotent); if it persists, contact support with the "
     "request id.",
     0},
};

/* Codes registered with IANA (RFC 9110 and others) that no seed document lists: their own
 * reason phrase and meaning replace the class template's "Unknown ..." ones (the class's
 * advice stands). Sorted by code. */
static const struct registered {
    int code;
    const char *reason;
    const char *description;
} registered[] = {
    {102, "Processing", "Interim response (WebDAV, RFC 2518): the server is still working on the request."},
    {103, "Early Hints", "Interim response (RFC 8297): headers sent ahead of the final answer."},
    {207, "Multi-Status", "WebDAV (RFC 4918): several statuses in the body, for several resources."},
    {208, "Already Reported", "WebDAV (RFC 5842): members already listed in this multi-status answer."},
    {226, "IM Used", "Delta encoding (RFC 3229): the answer is the result of instance manipulations."},
    {307, "Temporary Redirect", "RFC 9110: the resource is temporarily at the URI in Location; the method "
                                "must not change."},
    {308, "Permanent Redirect", "RFC 9110: the resource has a new permanent URI in Location; the method "
                                "must not change."},
    {421, "Misdirected Request", "RFC 9110: the request reached a server that cannot answer for that host "
                                 "(a connection reused for another name)."},
    {423, "Locked", "WebDAV (RFC 4918): the resource is locked."},
    {424, "Failed Dependency", "WebDAV (RFC 4918): the request depended on another that failed."},
    {425, "Too Early", "RFC 8470: the server will not process a request that might be replayed."},
    {426, "Upgrade Required", "RFC 9110: the server refuses the request over this protocol."},
    {428, "Precondition Required", "RFC 6585: the server requires the request to be conditional."},
    {431, "Request Header Fields Too Large", "RFC 6585: the request's header fields are too large."},
    {451, "Unavailable For Legal Reasons", "RFC 7725: the resource is withheld for legal reasons."},
    {506, "Variant Also Negotiates", "RFC 2295: the server's content negotiation is misconfigured."},
    {507, "Insufficient Storage", "WebDAV (RFC 4918): the server cannot store what the request needs."},
    {508, "Loop Detected", "WebDAV (RFC 5842): the server found an infinite loop in the request."},
    {510, "Not Extended", "RFC 2774 (obsolete): the request lacks an extension the server requires."},
    {511, "Network Authentication Required", "RFC 6585: a captive portal or network gateway wants a login "
                                             "before any request passes."},
};

static int compare_code(const void *key, const void *elem)
{
    int a = *(const int *)key;
    int b = ((const eip_status_info *)elem)->code;
    return (a > b) - (a < b);
}

static const eip_status_info *fallback_for(int code)
{
    if (code < 100 || code > 599)
        return &fallback_unknown;
    return &fallbacks[code / 100 - 1];
}

const eip_status_info *eip_status_lookup(int code, eip_status_info *scratch)
{
    const eip_status_info *hit, *tmpl;

    hit = bsearch(&code, table, TABLE_LEN, sizeof table[0], compare_code);
    if (hit)
        return hit;
    tmpl = fallback_for(code);
    /* A NULL scratch breaks the contract; answering with the shared template (code 0)
     * still keeps the promise never to return NULL. */
    if (!scratch)
        return tmpl;
    *scratch = *tmpl;
    scratch->code = code;
    {
        size_t i;
        for (i = 0; i < sizeof registered / sizeof registered[0]; i++) {
            if (registered[i].code == code) {
                scratch->reason = registered[i].reason;
                scratch->description = registered[i].description;
                break;
            }
        }
    }
    return scratch;
}

const char *eip_status_class_name(eip_status_class klass)
{
    switch (klass) {
    case EIP_CLASS_INFORMATIONAL: return "informational";
    case EIP_CLASS_SUCCESS:       return "success";
    case EIP_CLASS_REDIRECT:      return "redirect";
    case EIP_CLASS_CLIENT_ERROR:  return "client_error";
    case EIP_CLASS_SERVER_ERROR:  return "server_error";
    case EIP_CLASS_UNKNOWN:       return "unknown";
    }
    return "unknown"; /* a value cast from an out-of-range int */
}

size_t eip_status_count(void)
{
    return TABLE_LEN;
}

const eip_status_info *eip_status_at(size_t i)
{
    return i < TABLE_LEN ? &table[i] : NULL;
}

/* Append s at *len, truncating like snprintf: buf always stays NUL-terminated. */
static void append_bounded(char *buf, size_t cap, size_t *len, const char *s)
{
    while (*s && *len + 1 < cap)
        buf[(*len)++] = *s++;
    buf[*len] = '\0';
}

const char *eip_status_seeds_string(unsigned seeds, char *buf, size_t cap)
{
    static const struct { unsigned bit; const char *name; } names[] = {
        {EIP_SEED_000_EIP, "000"}, {EIP_SEED_001_CCI, "001"},
        {EIP_SEED_003_NAT, "003"}, {EIP_SEED_004_EVS, "004"},
    };
    size_t i, len = 0;
    int first = 1;

    if (!buf || cap == 0)
        return buf; /* no room even for the NUL: write nothing */
    buf[0] = '\0';
    /* Bits other than the four seeds are ignored: they name no document. */
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(seeds & names[i].bit))
            continue;
        if (!first)
            append_bounded(buf, cap, &len, ",");
        append_bounded(buf, cap, &len, names[i].name);
        first = 0;
    }
    return buf;
}
