-- Invalidates entries of one group: new fence tokens first (a load in flight can no longer store what it
-- read), then the entries themselves. Every key it touches is declared, and all share the group's hash tag.
-- KEYS[1] the group's fence hash, KEYS[2..] entries to delete
-- ARGV[1] the new token, ARGV[2] the fence hash's TTL in seconds, ARGV[3] a channel to PUBLISH ARGV[4] on once done
-- ('' for none), ARGV[5..] fence fields to move ('*' = the whole group)
-- Returns the entries that existed, each followed by the milliseconds it had left (what a refresh may reload).
for i = 5, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], ARGV[1]) end
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
-- The announcement goes out in the script's own step: no subscriber hears it before the entries are gone, and its
-- sender hears the reply (and emits its event) only after every subscriber connection has it queued.
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return existed
