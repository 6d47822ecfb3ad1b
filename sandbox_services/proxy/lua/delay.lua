-- Fault injection: hold a request for the given milliseconds before it goes on.
-- core.msleep yields this request's task only; the proxy keeps serving others.
core.register_action("lab_delay", { "http-req" }, function(txn, milliseconds)
    core.msleep(tonumber(milliseconds))
end, 1)
