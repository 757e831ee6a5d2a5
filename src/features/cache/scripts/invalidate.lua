-- Invalidates entries of one group: new fence tokens first (a load in flight can no longer store what it
-- read), then the entries themselves. Every key it touches is declared, and all share the group's hash tag.
-- KEYS[1] the group's fence hash, KEYS[2..] entries to delete
-- ARGV[1] the new token, ARGV[2] the fence hash's TTL in seconds, ARGV[3..] fence fields to move ('*' = the whole group)
-- Returns the entries that existed, each followed by the milliseconds it had left (what a refresh may reload).
for i = 3, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], ARGV[1]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
local existed = {}
for i = 2, #KEYS do
  local left = redis.call('PTTL', KEYS[i])
  if left > 0 then
    existed[#existed + 1] = KEYS[i]
    existed[#existed + 1] = left
  end
end
if #KEYS > 1 then redis.call('UNLINK', unpack(KEYS, 2)) end
return existed
