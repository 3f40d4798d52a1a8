//! Real-looking step output shared by the parser tests.

/// `redis-cli INFO everything` from Redis 7.2 (one replica attached, a few commands
/// run), LF line endings; tests make the CRLF version redis-cli really prints.
pub(super) const REDIS7_INFO: &str = "\
# Server
redis_version:7.2.4
redis_git_sha1:00000000
redis_git_dirty:0
redis_build_id:6fc2b8429e6bd2fa
redis_mode:standalone
os:Linux 6.5.0-1016-azure x86_64
arch_bits:64
monotonic_clock:POSIX clock_gettime
multiplexing_api:epoll
atomicvar_api:c11-builtin
gcc_version:12.2.0
process_id:1
process_supervised:no
run_id:d2a8a5d5c9e0e7f4a0b9f2b3b4d5e6f7a8b9c0d1
tcp_port:6379
server_time_usec:1714557600123456
uptime_in_seconds:432000
uptime_in_days:5
hz:10
configured_hz:10
lru_clock:14460000
executable:/usr/local/bin/redis-server
config_file:
io_threads_active:0
listener0:name=tcp,bind=*,bind=-::*,port=6379

# Clients
connected_clients:1
cluster_connections:0
maxclients:10000
client_recent_max_input_buffer:20480
client_recent_max_output_buffer:0
blocked_clients:0
tracking_clients:0
clients_in_timeout_table:0
total_blocking_keys:0
total_blocking_keys_on_nokey:0

# Memory
used_memory:1069264
used_memory_human:1.02M
used_memory_rss:3280896
used_memory_rss_human:3.13M
used_memory_peak:1069264
used_memory_peak_human:1.02M
used_memory_peak_perc:100.00%
used_memory_overhead:868448
used_memory_startup:865776
used_memory_dataset:200816
used_memory_dataset_perc:98.69%
allocator_allocated:1391672
allocator_active:1654784
allocator_resident:4194304
total_system_memory:16743137280
total_system_memory_human:15.59G
used_memory_lua:31744
used_memory_vm_eval:31744
used_memory_lua_human:31.00K
used_memory_scripts_eval:0
number_of_cached_scripts:0
number_of_functions:0
number_of_libraries:0
used_memory_vm_functions:32768
used_memory_vm_total:64512
used_memory_vm_total_human:63.00K
used_memory_functions:184
used_memory_scripts:184
used_memory_scripts_human:184B
maxmemory:0
maxmemory_human:0B
maxmemory_policy:noeviction
allocator_frag_ratio:1.19
allocator_frag_bytes:263112
allocator_rss_ratio:2.53
allocator_rss_bytes:2539520
rss_overhead_ratio:0.78
rss_overhead_bytes:-913408
mem_fragmentation_ratio:3.07
mem_fragmentation_bytes:2211632
mem_not_counted_for_evict:0
mem_replication_backlog:1048592
mem_total_replication_buffers:1048576
mem_clients_slaves:1920
mem_clients_normal:1928
mem_cluster_links:0
mem_aof_buffer:0
mem_allocator:jemalloc-5.3.0
active_defrag_running:0
lazyfree_pending_objects:0
lazyfreed_objects:0

# Persistence
loading:0
async_loading:0
current_cow_peak:0
current_cow_size:0
current_cow_size_age:0
current_fork_perc:0.00
current_save_keys_processed:0
current_save_keys_total:0
rdb_changes_since_last_save:17
rdb_bgsave_in_progress:0
rdb_last_save_time:1714125600
rdb_last_bgsave_status:ok
rdb_last_bgsave_time_sec:0
rdb_current_bgsave_time_sec:-1
rdb_saves:1
rdb_last_cow_size:229376
rdb_last_load_keys_expired:0
rdb_last_load_keys_loaded:0
aof_enabled:0
aof_rewrite_in_progress:0
aof_rewrite_scheduled:0
aof_last_rewrite_time_sec:-1
aof_current_rewrite_time_sec:-1
aof_last_bgrewrite_status:ok
aof_rewrites:0
aof_rewrites_consecutive_failures:0
aof_last_write_status:ok
aof_last_cow_size:0
module_fork_in_progress:0
module_fork_last_cow_size:0

# Stats
total_connections_received:42
total_commands_processed:1337
instantaneous_ops_per_sec:3
total_net_input_bytes:45678
total_net_output_bytes:123456
total_net_repl_input_bytes:0
total_net_repl_output_bytes:2346
instantaneous_input_kbps:0.12
instantaneous_output_kbps:2.31
instantaneous_input_repl_kbps:0.00
instantaneous_output_repl_kbps:0.01
rejected_connections:0
sync_full:1
sync_partial_ok:0
sync_partial_err:0
expired_keys:5
expired_stale_perc:0.00
expired_time_cap_reached_count:0
expire_cycle_cpu_milliseconds:12
evicted_keys:0
evicted_clients:0
total_eviction_exceeded_time:0
current_eviction_exceeded_time:0
keyspace_hits:100
keyspace_misses:7
pubsub_channels:0
pubsub_patterns:0
pubsubshard_channels:0
latest_fork_usec:312
total_forks:1
migrate_cached_sockets:0
slave_expires_tracked_keys:0
active_defrag_hits:0
active_defrag_misses:0
active_defrag_key_hits:0
active_defrag_key_misses:0
total_active_defrag_time:0
current_active_defrag_time:0
tracking_total_keys:0
tracking_total_items:0
tracking_total_prefixes:0
unexpected_error_replies:0
total_error_replies:2
dump_payload_sanitizations:0
total_reads_processed:1380
total_writes_processed:1338
io_threaded_reads_processed:0
io_threaded_writes_processed:0
reply_buffer_shrinks:5
reply_buffer_expands:0
eventloop_cycles:4321098
eventloop_duration_sum:98765432
eventloop_duration_cmd_sum:1234567
instantaneous_eventloop_cycles_per_sec:10
instantaneous_eventloop_duration_usec:23
acl_access_denied_auth:0
acl_access_denied_cmd:0
acl_access_denied_key:0
acl_access_denied_channel:0

# Replication
role:master
connected_slaves:1
slave0:ip=10.244.0.12,port=6379,state=online,offset=2346,lag=1
master_failover_state:no-failover
master_replid:8e3f1a2b4c5d6e7f8091a2b3c4d5e6f708192a3b
master_replid2:0000000000000000000000000000000000000000
master_repl_offset:2346
second_repl_offset:-1
repl_backlog_active:1
repl_backlog_size:1048576
repl_backlog_first_byte_offset:1
repl_backlog_histlen:2346

# CPU
used_cpu_sys:0.123
used_cpu_user:0.456
used_cpu_sys_children:0.000
used_cpu_user_children:0.001
used_cpu_sys_main_thread:0.120
used_cpu_user_main_thread:0.450

# Modules

# Commandstats
cmdstat_ping:calls=120,usec=180,usec_per_call=1.50,rejected_calls=0,failed_calls=0
cmdstat_info:calls=3,usec=210,usec_per_call=70.00,rejected_calls=0,failed_calls=0
cmdstat_client|list:calls=2,usec=25,usec_per_call=12.50,rejected_calls=0,failed_calls=0
cmdstat_get:calls=1000,usec=1500,usec_per_call=1.50,rejected_calls=0,failed_calls=2
cmdstat_psync:calls=1,usec=406,usec_per_call=406.00,rejected_calls=0,failed_calls=0

# Errorstats
errorstat_ERR:count=2

# Latencystats
latency_percentiles_usec_ping:p50=1.003,p99=3.007,p99.9=7.007
latency_percentiles_usec_info:p50=20.095,p99=31.103,p99.9=31.103
latency_percentiles_usec_client|list:p50=12.031,p99=13.055,p99.9=13.055
latency_percentiles_usec_get:p50=1.003,p99=2.007,p99.9=5.023
latency_percentiles_usec_psync:p50=407.551,p99=407.551,p99.9=407.551

# Cluster
cluster_enabled:0

# Keyspace
db0:keys=12,expires=3,avg_ttl=86300144
";

/// Deterministic pseudo-random texts over `alphabet` (a small LCG: no dev-dependency,
/// and a failure reproduces exactly).
pub(super) fn random_texts(
    seed: u64,
    count: usize,
    max_len: usize,
    alphabet: &[&str],
) -> Vec<String> {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    (0..count)
        .map(|_| {
            let len = next() % (max_len + 1);
            (0..len)
                .map(|_| alphabet[next() % alphabet.len()])
                .collect()
        })
        .collect()
}
