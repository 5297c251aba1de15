#!/bin/sh
# Writes this pod's redis.conf and sentinel.conf into /config, before either starts (the
# StatefulSet's init container). Every pod runs one Redis and one sentinel; three pods, quorum 2.
#
# Which node is the master: what a running sentinel says (after a failover it is no longer
# pod 0), or, when none answers (a fresh set, or every pod restarting at once), pod 0.
# Nodes and sentinels announce their stable DNS names (POD.SERVICE), not pod IPs, which change
# with every restart: the sentinels' view survives restarts, and the verifier connects to the
# name a sentinel gives it.
set -eu

service="${SERVICE_NAME:?}"
self="${POD_NAME:?}.$service"
password="$(cat "${PASSWORD_FILE:-/secrets/redis/password}")"
config_dir="${CONFIG_DIR:-/config}"

master=""
for ordinal in 0 1 2; do
  sentinel="$service-$ordinal.$service"
  answer="$(timeout 3 redis-cli -h "$sentinel" -p 26379 --raw \
    sentinel get-master-addr-by-name mymaster 2>/dev/null | head -n 1)" || answer=""
  if [ -n "$answer" ]; then
    master="$answer"
    break
  fi
done
if [ -z "$master" ]; then
  master="$service-0.$service"
fi

cat > "$config_dir/redis.conf" <<CONF
port 6379
dir /data
# an fsync before every reply: an acknowledged revocation is on disk (docs/deploy.md)
appendonly yes
appendfsync always
save ""
requirepass "$password"
masterauth "$password"
replica-announce-ip $self
# full is refused writes (the verifier answers 503 and keeps verifying), never an OOM kill
maxmemory ${REDIS_MAXMEMORY:-400mb}
maxmemory-policy noeviction
CONF
if [ "$master" != "$self" ]; then
  echo "replicaof $master 6379" >> "$config_dir/redis.conf"
fi

# the sentinel rewrites this file as it learns (its id, the others, the current master)
cat > "$config_dir/sentinel.conf" <<CONF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $self
sentinel monitor mymaster $master 6379 2
sentinel auth-pass mymaster "$password"
sentinel down-after-milliseconds mymaster 5000
sentinel failover-timeout mymaster 60000
sentinel parallel-syncs mymaster 1
CONF
echo "redis-config: $self starts with master $master"
