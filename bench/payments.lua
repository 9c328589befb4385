-- POST /v1/transactions: payments of 1 penny, round-robin over invoices
-- (each thread its own), so a payment rarely waits for another's invoice.
local key = os.getenv("HUB_KEY")
local invoices = {}
for id in string.gmatch(os.getenv("INVOICES"), "[^,]+") do invoices[#invoices + 1] = id end
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
local tid, n = 0, 0
function init(args)
  tid = wrk.thread:get("tid")
end
request = function()
  n = n + 1
  local per = math.floor(#invoices / 2)
  local inv = invoices[(tid - 1) * per + (n % per) + 1]
  local body = string.format('{"invoiceId":"%s","type":"payment","amount":1,"currency":"GBP","method":"card"}', inv)
  return wrk.format("POST", "/v1/transactions", { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }, body)
end
