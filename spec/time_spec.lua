-- Calendar arithmetic for IAM expiry and Retry-After dates, checked against known instants.
local time = require "eip.time"
local retry = require "eip.retry"

describe("eip.time", function()
  it("parses ISO 8601 UTC times", function()
    assert.equal(0, time.parse_iso8601("1970-01-01T00:00:00Z"))
    assert.equal(951782400, time.parse_iso8601("2000-02-29T00:00:00.000000Z"))
    assert.equal(1795910400, time.parse_iso8601("2026-11-29T00:00:00.000000Z"))
    assert.equal(4102444799, time.parse_iso8601("2099-12-31T23:59:59Z"))
    assert.is_nil(time.parse_iso8601("tomorrow"))
    assert.is_nil(time.parse_iso8601(42))
  end)

  -- An offset was dropped: +08:00 read as UTC kept temporary keys eight hours past their expiry
  -- (every signature refused), -05:00 made valid keys look expired (renewed at every call).
  it("applies a UTC offset, and reads a time without a zone as unknown", function()
    assert.equal(1795910400, time.parse_iso8601("2026-11-29T08:00:00+08:00"))
    assert.equal(1795910400, time.parse_iso8601("2026-11-29T08:00:00.5+0800"))
    assert.equal(1795910400, time.parse_iso8601("2026-11-28T19:00:00-05:00"))
    assert.equal(1795910400, time.parse_iso8601("2026-11-29T00:00:00+00:00"))
    assert.equal(1795910400, time.parse_iso8601("2026-11-29T00:00:00z"))
    for _, s in ipairs{ "2026-11-29T00:00:00", "2026-11-29T00:00:00.000", "2026-11-29T00:00:00 UTC",
        "2026-11-29T00:00:00Zjunk", "2026-11-29T00:00:00+8", "2026-11-29T00:00:00+08:00:00",
        "2026-11-29T00:00:00123Z", "2026-11-29T00:00:00.Z" } do
      assert.is_nil(time.parse_iso8601(s), s)
    end
  end)

  -- A field out of range was counted on (month 13 the next year's January, hour 99 four days on):
  -- a garbled expiry read as a date months away, not as unknown (an hour, see eip.auth).
  it("parse_iso8601 refuses a field out of range, as parse_http_date does", function()
    for _, s in ipairs{ "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z", "2026-02-29T00:00:00Z",
        "2026-11-31T00:00:00Z", "2026-11-00T00:00:00Z", "2026-11-29T24:00:00Z", "2026-11-29T23:60:00Z",
        "2026-11-29T23:59:61Z", "2026-11-29T00:00:00+24:00", "2026-11-29T00:00:00+08:60" } do
      assert.is_nil(time.parse_iso8601(s), s)
    end
    assert.equal(1772236800, time.parse_iso8601("2026-02-28T00:00:00Z"))
    assert.equal(951782400 + 86399, time.parse_iso8601("2000-02-29T23:59:59+00:00"))
  end)

  it("parses HTTP-dates", function()
    assert.equal(1445412480, time.parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"))
    assert.is_nil(time.parse_http_date("Wed, 21 Foo 2015 07:28:00 GMT"))
    assert.is_nil(time.parse_http_date("21 Oct 2015"))
  end)

  -- RFC 9110 5.6.7: a recipient accepts all three forms; only IMF-fixdate was read, so a
  -- Retry-After in RFC 850 or asctime form counted as absent (retried after 2-5 s, not after
  -- the wait asked for, nor raised at once when beyond the cap).
  it("parses the obsolete HTTP-date forms: RFC 850 (two-digit year) and asctime", function()
    local now = 1795910400 -- 2026-11-29
    assert.equal(784111777, time.parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", now))
    assert.equal(784111777, time.parse_http_date("Sun Nov  6 08:49:37 1994", now))
    assert.equal(784111777, time.parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", now))
    assert.equal(1796052000, time.parse_http_date("Monday, 30-Nov-26 15:20:00 GMT", now))
    assert.equal(1796052000, time.parse_http_date("Mon Nov 30 15:20:00 2026", now))
    -- A two-digit year more than 50 years ahead is the past century's; 50 years or less is ahead.
    assert.equal(time.parse_http_date("Thu, 28 Nov 2075 00:00:00 GMT"),
      time.parse_http_date("Thursday, 28-Nov-75 00:00:00 GMT", now))
    assert.equal(time.parse_http_date("Tue, 30 Nov 1976 00:00:00 GMT"),
      time.parse_http_date("Tuesday, 30-Nov-76 00:00:00 GMT", now))
    assert.equal(time.parse_http_date("Sat, 01 Jan 2000 00:00:00 GMT"),
      time.parse_http_date("Saturday, 01-Jan-00 00:00:00 GMT", now))
    -- Retry-After reads them as it reads IMF-fixdate.
    assert.equal(80, retry.parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", 1445412400))
    assert.equal(80, retry.parse_retry_after("Wed Oct 21 07:28:00 2015", 1445412400))
    for _, bad in ipairs{ "Sunday, 06-Nov-1994 08:49:37 GMT", "Sun, 06-Nov-94 08:49:37 GMT",
        "Someday, 06-Nov-94 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37", "Sunday, 6-Nov-94 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994", "Sun Nov  6 08:49:37 94", "Sun Nov  6 08:49:37 1994 GMT",
        "Sun Foo  6 08:49:37 1994", "Sun Nov 32 08:49:37 1994", "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Nov 1994 08:60:00 GMT", "Sun Nov  0 08:49:37 1994",
        "Sunday, 06-Nov-94 08:49:37 GMT" .. string.rep(" ", 1000), string.rep("Sunday, ", 10000) } do
      assert.is_nil(time.parse_http_date(bad, now), bad:sub(1, 40))
    end
  end)

  it("turns Retry-After into seconds to wait", function()
    assert.equal(120, retry.parse_retry_after("120", 0))
    assert.equal(7, retry.parse_retry_after(" 7 ", 0))
    assert.equal(80, retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412400))
    assert.equal(0, retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445419999))
    -- A date is the server's clock: read against the answer's Date when that is an HTTP-date (in
    -- any form), whatever the local clock says; against the local clock otherwise.
    for _, local_now in ipairs{ 1445412400 - 366 * 86400, 1445412400, 1445419999, 2e9 } do
      for _, date in ipairs{ "Wed, 21 Oct 2015 07:26:40 GMT", "Wednesday, 21-Oct-15 07:26:40 GMT",
          "Wed Oct 21 07:26:40 2015" } do
        assert.equal(80, retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", local_now, date), date)
        assert.equal(80, retry.parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT, 3", local_now, date), date)
        assert.equal(3, retry.parse_retry_after("3", local_now, date), date)
      end
    end
    assert.equal(0, retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 0, "Wed, 21 Oct 2015 08:00:00 GMT"))
    for _, bad in ipairs{ "yesterday", "Wed, 21 Oct 2015 07:26:40 GMT...", "", 1445412400, false } do
      assert.equal(80, retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412400, bad), tostring(bad))
    end
    for _, bad in ipairs{ "-1", "1.5", "soon", "", "+5", "1e3", "0x10", "-99999999999999999999" } do
      assert.is_nil(retry.parse_retry_after(bad, 0), bad)
    end
    -- Repeated headers, joined by the transports ("60, 1"): the longest wait of the usable
    -- values (the last alone was taken: 1 s, and the request sent again within the server's 60).
    assert.equal(60, retry.parse_retry_after("60, 1", 0))
    assert.equal(60, retry.parse_retry_after("1,60", 0))
    assert.equal(2, retry.parse_retry_after("2, abc", 0))
    assert.equal(2, retry.parse_retry_after("abc, 2", 0))
    assert.equal(80, retry.parse_retry_after("5, Wed, 21 Oct 2015 07:28:00 GMT", 1445412400))
    assert.equal(80, retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT, 5", 1445412400))
    assert.equal(80, retry.parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT, Wed Oct 21 07:28:00 2015, 3",
      1445412400))
    assert.equal(math.huge, retry.parse_retry_after("1, " .. string.rep("9", 30), 0))
    for _, bad in ipairs{ ",", " , ", "abc, -1", "Wed, 21 Oct", "1.5, soon" } do
      assert.is_nil(retry.parse_retry_after(bad, 0), bad)
    end
    -- A number too large to mean a wait is a wait longer than any cap, not an absent header.
    assert.equal(1e9, retry.parse_retry_after("1000000000", 0))
    for _, huge in ipairs{ "1000000001", "99999999999", "99999999999999999999", string.rep("9", 400) } do
      assert.equal(math.huge, retry.parse_retry_after(huge, 0), huge)
    end
    assert.is_nil(retry.parse_retry_after(nil, 0))
  end)
end)
