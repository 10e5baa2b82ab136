-- socket.lua: who may connect. Not a channel: luachan runs connect before the WebSocket
-- upgrade, and refusing answers HTTP 403 (the client retries with backoff).
--
-- Anonymous sockets are welcome. A socket that brings a token, as ?token=... or as the JS
-- client's authToken option, must bring a valid one: an HS256 JWT signed with the server's
-- -secret (any backend can mint one), not expired. Its "sub" becomes assigns.user in every
-- channel of the socket and names the socket "user_socket:<sub>", so
-- POST /api/disconnect {"id": "user_socket:alice"} logs alice out everywhere.
return {
  connect = function(params, info)
    local token = params.token or info.auth_token
    if token == nil or token == "" then
      return true                          -- anonymous: empty assigns, no socket id
    end
    -- without -secret, verify refuses every token ("no secret configured")
    local claims, reason = luachan.token.verify(token)
    if not claims or type(claims.sub) ~= "string" then
      luachan.log("info", "token refused", { reason = reason or "no sub claim", remote_ip = info.remote_ip })
      return false
    end
    return true, { user = claims.sub }, "user_socket:" .. claims.sub
  end,
}
