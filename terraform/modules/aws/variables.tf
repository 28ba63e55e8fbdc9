################################################################################
# General
################################################################################

variable "name" {
  description = "Name prefix for every resource (functions are named <name>-<fn>, the stream <name>, the bucket <name>-lake-<account>-<region>). Lower case letters, digits and hyphens."
  type        = string
  default     = "sluice"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.name))
    error_message = "name must be 2-20 characters (bucket names add account id and region and stop at 63): lower case letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every resource that supports them."
  type        = map(string)
  default     = {}
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the lake and log buckets even when they still hold objects. Keep false outside throwaway environments."
  type        = bool
  default     = false
}

################################################################################
# Lambda functions
################################################################################

variable "source_dir" {
  description = "Repository root: the directory holding target/lambda/<fn>/bootstrap.zip as produced by `bash terraform/build-lambdas.sh` (x86_64) or with `--arm64` (arm64)."
  type        = string
}

variable "architecture" {
  description = "Lambda instruction set: x86_64 (what the project's own build produces) or arm64 (build with `bash terraform/build-lambdas.sh --arm64` after `rustup target add aarch64-unknown-linux-gnu`)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "lambda_memory_mb" {
  description = "Memory (MB) per function. aggregate holds one full batch (up to ~6 MB of payload, ~7,500 trade records) plus the Parquet encoders, hence the larger default."
  type        = map(number)
  default = {
    generate  = 256
    fetch     = 256
    aggregate = 1024
    alert     = 256
  }

  validation {
    condition     = alltrue([for fn in ["generate", "fetch", "aggregate", "alert"] : contains(keys(var.lambda_memory_mb), fn)])
    error_message = "lambda_memory_mb needs an entry for each of generate, fetch, aggregate and alert."
  }
}

variable "lambda_timeout_s" {
  description = "Timeout (seconds) per function. Keep generate and fetch below their schedule period."
  type        = map(number)
  default = {
    generate  = 50
    fetch     = 50
    aggregate = 120
    alert     = 60
  }

  validation {
    condition     = alltrue([for fn in ["generate", "fetch", "aggregate", "alert"] : contains(keys(var.lambda_timeout_s), fn)])
    error_message = "lambda_timeout_s needs an entry for each of generate, fetch, aggregate and alert."
  }
}

variable "lambda_reserved_concurrency" {
  description = "Reserved concurrent executions per function; -1 means unreserved. generate and fetch are scheduled singletons: 1 stops an overlapping tick from racing the previous one (their state write is conditional anyway). Accounts whose concurrency quota is still 10 cannot reserve anything: set all to -1 there."
  type        = map(number)
  default = {
    generate  = 1
    fetch     = 1
    aggregate = -1
    alert     = -1
  }

  validation {
    condition     = alltrue([for fn in ["generate", "fetch", "aggregate", "alert"] : contains(keys(var.lambda_reserved_concurrency), fn)])
    error_message = "lambda_reserved_concurrency needs an entry for each of generate, fetch, aggregate and alert."
  }
}

variable "tracing_mode" {
  description = "X-Ray tracing mode for every function: Active (sample and send traces) or PassThrough."
  type        = string
  default     = "Active"

  validation {
    condition     = contains(["Active", "PassThrough"], var.tracing_mode)
    error_message = "tracing_mode must be Active or PassThrough."
  }
}

variable "log_level" {
  description = "SLUICE_LOG for every function: a tracing filter such as info, debug or sluice_aggregate=debug,info."
  type        = string
  default     = "info"
}

variable "log_retention_days" {
  description = "Retention of each function's CloudWatch log group, in days (a value CloudWatch accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ...)."
  type        = number
  default     = 30
}

################################################################################
# Stream definitions
################################################################################

variable "streams_dir" {
  description = "Directory of stream definition files: every *.toml in it is uploaded to the lake bucket under streams/ and read by every function at cold start (SLUICE_STREAMS_PREFIX). null uses the repository's streams/ (the shipped trades, telemetry and clickstream). Generate the matching Glue tables with `sluice schema --format glue --streams DIR` and pass that file as glue_tables_json."
  type        = string
  default     = null
}

################################################################################
# Producers: generate and fetch
################################################################################

variable "sink" {
  description = "Where generate and fetch send events (SLUICE_SINK): kinesis (the stream created here) or eventhubs (an Azure Event Hub; set eventhubs_namespace and eventhubs_name, and put the send-only connection string into the secret output as eventhubs_secret_arn)."
  type        = string
  default     = "kinesis"

  validation {
    condition     = contains(["kinesis", "eventhubs"], var.sink)
    error_message = "sink must be kinesis or eventhubs."
  }
}

variable "eventhubs_namespace" {
  description = "Event Hubs namespace host (e.g. mynamespace.servicebus.windows.net) when sink = eventhubs."
  type        = string
  default     = ""
}

variable "eventhubs_name" {
  description = "Event Hub name when sink = eventhubs."
  type        = string
  default     = ""
}

variable "generate_enabled" {
  description = "Whether the generate schedule is enabled."
  type        = bool
  default     = true
}

variable "generate_schedule" {
  description = "EventBridge Scheduler expression for generate, e.g. rate(1 minute)."
  type        = string
  default     = "rate(1 minute)"
}

variable "generate_scenarios" {
  description = "Scenarios generate produces (SLUICE_SCENARIOS)."
  type        = list(string)
  default     = ["trades", "telemetry", "clickstream"]

  validation {
    condition     = length(var.generate_scenarios) > 0 && alltrue([for s in var.generate_scenarios : contains(["trades", "telemetry", "clickstream"], s)])
    error_message = "generate_scenarios must be a non-empty subset of trades, telemetry and clickstream."
  }
}

variable "generate_rate" {
  description = "Events per second per scenario that generate produces (SLUICE_RATE)."
  type        = number
  default     = 20
}

variable "generate_seed" {
  description = "Seed of the generators (SLUICE_SEED): the same seed and start replays the same stream."
  type        = number
  default     = 42
}

variable "fetch_url" {
  description = "HTTP API URL fetch polls (SLUICE_FETCH_URL). Empty disables the fetch schedule (the function is still deployed)."
  type        = string
  default     = ""
}

variable "fetch_schedule" {
  description = "EventBridge Scheduler expression for fetch, e.g. rate(5 minutes)."
  type        = string
  default     = "rate(5 minutes)"
}

variable "fetch_auth_header" {
  description = "HTTP header that carries the API key read from the fetch secret (SLUICE_FETCH_AUTH_HEADER)."
  type        = string
  default     = "Authorization"
}

variable "fetch_mapping" {
  description = "TOML text of the API response → event mapping (SLUICE_FETCH_MAPPING). All of a function's environment variables together must stay under Lambda's 4 KB limit."
  type        = string
  default     = ""
}

################################################################################
# Stream and aggregate
################################################################################

variable "kinesis_stream_mode" {
  description = "Kinesis capacity mode: ON_DEMAND or PROVISIONED (then kinesis_shard_count applies)."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.kinesis_stream_mode)
    error_message = "kinesis_stream_mode must be ON_DEMAND or PROVISIONED."
  }
}

variable "kinesis_shard_count" {
  description = "Shard count when kinesis_stream_mode = PROVISIONED."
  type        = number
  default     = 1
}

variable "kinesis_retention_hours" {
  description = "Kinesis record retention in hours (24-8760): how long a stuck aggregate can fall behind before records are lost."
  type        = number
  default     = 24

  validation {
    condition     = var.kinesis_retention_hours >= 24 && var.kinesis_retention_hours <= 8760
    error_message = "kinesis_retention_hours must be between 24 and 8760."
  }
}

variable "aggregate_batch_size" {
  description = "Largest Kinesis batch handed to aggregate. Lambda's 6 MB invoke payload holds ~7,500 trade records (each ~190 bytes plus ~500 bytes of envelope), so 5000 leaves headroom; larger values are capped by the payload anyway."
  type        = number
  default     = 5000

  validation {
    condition     = var.aggregate_batch_size >= 1 && var.aggregate_batch_size <= 10000
    error_message = "aggregate_batch_size must be between 1 and 10000."
  }
}

variable "aggregate_batching_window_s" {
  description = "Seconds the event source mapping waits to fill a batch (maximum_batching_window_in_seconds, 0-300)."
  type        = number
  default     = 5
}

variable "aggregate_parallelization_factor" {
  description = "Concurrent batches per shard. Must be 1: aggregate keeps one state object per shard and skips records at or below its committed position as redeliveries, so batches of one shard processed concurrently (Lambda allows 1-10) would be skipped as if already seen, losing data."
  type        = number
  default     = 1

  validation {
    condition     = var.aggregate_parallelization_factor == 1
    error_message = "aggregate_parallelization_factor must be 1: concurrent batches of one shard would be skipped as redeliveries of each other (see the module README)."
  }
}

variable "aggregate_maximum_retry_attempts" {
  description = "Retries of a failing batch before its shard/sequence range is sent to the DLQ and the shard moves on (0-10000)."
  type        = number
  default     = 5
}

variable "aggregate_maximum_record_age_s" {
  description = "Records older than this are sent to the DLQ instead of processed (60-604800, or -1 for no limit)."
  type        = number
  default     = -1
}

variable "quarantine_rate_alarm" {
  description = "Alarm when more than this fraction of the records aggregate reads is quarantined, over three 5-minute periods (0.01 = 1%)."
  type        = number
  default     = 0.01

  validation {
    condition     = var.quarantine_rate_alarm > 0 && var.quarantine_rate_alarm < 1
    error_message = "quarantine_rate_alarm is a fraction between 0 and 1."
  }
}

variable "aggregate_sweep_schedule" {
  description = "EventBridge Scheduler expression for the aggregate sweep, which closes the windows of shards that have been quiet for aggregate_idle_timeout, e.g. rate(1 minute)."
  type        = string
  default     = "rate(1 minute)"
}

variable "aggregate_idle_timeout" {
  description = "SLUICE_IDLE_TIMEOUT: a sweep moves the watermark of a shard whose last record arrived longer ago than this (as if event time had gone on with the clock) and writes the windows that closes, e.g. 1m."
  type        = string
  default     = "1m"

  validation {
    condition     = can(regex("^([0-9]+(ms|s|min|m|h|d))+$", var.aggregate_idle_timeout))
    error_message = "aggregate_idle_timeout is a duration such as 30s, 1m or 1h."
  }
}

variable "aggregate_series_ttl" {
  description = "SLUICE_SERIES_TTL: the detector state of a key with no window for this long (event time, e.g. a delisted symbol or a retired host) is evicted, so state does not grow with every key ever seen, e.g. 1d."
  type        = string
  default     = "1d"

  validation {
    condition     = can(regex("^([0-9]+(ms|s|min|m|h|d))+$", var.aggregate_series_ttl))
    error_message = "aggregate_series_ttl is a duration such as 12h or 1d."
  }
}

variable "aggregate_lateness" {
  description = "Allowed lateness (SLUICE_LATENESS): the watermark trails the largest event time by this much, e.g. 5s."
  type        = string
  default     = "5s"
}

variable "aggregate_extra_windows" {
  description = "Extra window specs beyond the built-in ones (SLUICE_WINDOWS), comma separated, e.g. sliding:30s. Empty for none."
  type        = string
  default     = ""
}

################################################################################
# Kafka event sources of aggregate (optional, off by default: see kafka.tf)
################################################################################

variable "msk_cluster_arn" {
  description = "ARN of an Amazon MSK cluster (provisioned or serverless) whose kafka_topics aggregate reads, one event source mapping per topic. Empty (the default) creates no MSK mapping and no MSK permissions. Lambda authenticates with IAM when the cluster has IAM access control on (the role gets the kafka-cluster actions for these topics and its consumer groups), otherwise unauthenticated; it reaches the brokers through network interfaces in the cluster's own subnets."
  type        = string
  default     = ""

  validation {
    condition     = var.msk_cluster_arn == "" || can(regex("^arn:[^:]+:kafka:[^:]+:[0-9]+:cluster/[^/]+/[^/]+$", var.msk_cluster_arn))
    error_message = "msk_cluster_arn must be empty or an MSK cluster ARN (arn:<partition>:kafka:<region>:<account>:cluster/<name>/<uuid>)."
  }
}

variable "kafka_bootstrap_servers" {
  description = "host:port of the brokers of a self-managed Kafka cluster (or [\"<namespace>.servicebus.windows.net:9093\"] for Azure Event Hubs, the azure module's kafka_bootstrap_server output) whose kafka_topics aggregate reads. Empty (the default) creates no self-managed mapping. The brokers must be reachable from the internet over SASL/TLS (the functions are not in a VPC). aggregate keeps the state of these partitions under a hash of this list: changing it starts them over."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.kafka_bootstrap_servers) <= 10 && alltrue([for s in var.kafka_bootstrap_servers : can(regex("^[A-Za-z0-9.-]+:[0-9]{1,5}$", s))])
    error_message = "kafka_bootstrap_servers takes at most 10 entries, each host:port."
  }
}

variable "kafka_topics" {
  description = "Kafka topics aggregate reads from the MSK cluster and/or the self-managed cluster (an Event Hub's name is its topic). Lambda reads one topic per event source mapping, so each topic gets its own mapping and consumer group. Required when msk_cluster_arn or kafka_bootstrap_servers is set."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.kafka_topics) == length(distinct(var.kafka_topics)) && alltrue([for t in var.kafka_topics : can(regex("^[A-Za-z0-9._-]{1,249}$", t))])
    error_message = "kafka_topics must be distinct Kafka topic names (1-249 letters, digits, '.', '_' or '-')."
  }
}

variable "kafka_consumer_group_prefix" {
  description = "Prefix of the Kafka consumer group of each mapping: <prefix>-msk-<topic> or <prefix>-kafka-<topic> (a group id must be unique among the account's Kafka mappings and cannot change without replacing the mapping). Empty uses <name>-aggregate. When a group of that id already exists, Lambda resumes from its committed offsets and ignores kafka_starting_position."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9/*:_+=.@-]{0,100}$", var.kafka_consumer_group_prefix))
    error_message = "kafka_consumer_group_prefix may hold at most 100 of the characters Lambda allows in a consumer group id (letters, digits and - / * : _ + = . @)."
  }
}

variable "kafka_batch_size" {
  description = "Largest batch of Kafka records handed to aggregate (1-10000). As for Kinesis (aggregate_batch_size), Lambda's 6 MB invoke payload caps a batch anyway; a Kafka record travels base64-encoded with its topic, partition, offset, timestamp, key and headers."
  type        = number
  default     = 5000

  validation {
    condition     = var.kafka_batch_size >= 1 && var.kafka_batch_size <= 10000
    error_message = "kafka_batch_size must be between 1 and 10000."
  }
}

variable "kafka_starting_position" {
  description = "Where a new consumer group starts reading each partition: TRIM_HORIZON (the oldest retained record, like the Kinesis mapping) or LATEST. Ignored when the consumer group already has committed offsets."
  type        = string
  default     = "TRIM_HORIZON"

  validation {
    condition     = contains(["TRIM_HORIZON", "LATEST"], var.kafka_starting_position)
    error_message = "kafka_starting_position must be TRIM_HORIZON or LATEST."
  }
}

variable "kafka_sasl_secret_arn" {
  description = "ARN of a Secrets Manager secret holding {\"username\":\"...\",\"password\":\"...\"} with which the self-managed mapping authenticates (SASL over TLS). aggregate's role may read exactly this secret. Encrypt it with this module's key (output kms_key_arn) or the default aws/secretsmanager key: the role may decrypt with no other customer-managed key. Leave empty when eventhubs_kafka_connection_string is set (this module then creates the secret)."
  type        = string
  default     = ""

  validation {
    condition     = var.kafka_sasl_secret_arn == "" || can(regex("^arn:[^:]+:secretsmanager:[^:]+:[0-9]+:secret:.+$", var.kafka_sasl_secret_arn))
    error_message = "kafka_sasl_secret_arn must be empty or a Secrets Manager secret ARN."
  }
}

variable "kafka_sasl_mechanism" {
  description = "SASL mechanism of the self-managed mapping: SASL_SCRAM_512_AUTH, SASL_SCRAM_256_AUTH or BASIC_AUTH (SASL/PLAIN over TLS, what Event Hubs speaks). Empty picks BASIC_AUTH when eventhubs_kafka_connection_string is set and SASL_SCRAM_512_AUTH otherwise."
  type        = string
  default     = ""

  validation {
    condition     = contains(["", "SASL_SCRAM_512_AUTH", "SASL_SCRAM_256_AUTH", "BASIC_AUTH"], var.kafka_sasl_mechanism)
    error_message = "kafka_sasl_mechanism must be empty, SASL_SCRAM_512_AUTH, SASL_SCRAM_256_AUTH or BASIC_AUTH."
  }
}

variable "eventhubs_kafka_connection_string" {
  description = "Listen-only Event Hubs connection string (the azure module's kafka_listen_connection_string output) for reading an Event Hub through its Kafka endpoint. When set, the module creates a Secrets Manager secret {\"username\":\"$ConnectionString\",\"password\":<this>} for the self-managed mapping (set kafka_bootstrap_servers and kafka_topics from the azure outputs too). The value is then stored in the Terraform state; to keep it out, leave this empty, create such a secret yourself and pass kafka_sasl_secret_arn with kafka_sasl_mechanism = BASIC_AUTH."
  type        = string
  default     = ""
  sensitive   = true
}

variable "kafka_provisioned_pollers" {
  description = "Provisioned mode of the Kafka mappings: the minimum number of event pollers kept ready per mapping (1-200, each ~5 MB/s, billed while provisioned). 0 (the default) leaves the mappings in on-demand mode."
  type        = number
  default     = 0

  validation {
    condition     = var.kafka_provisioned_pollers >= 0 && var.kafka_provisioned_pollers <= 200 && floor(var.kafka_provisioned_pollers) == var.kafka_provisioned_pollers
    error_message = "kafka_provisioned_pollers must be a whole number between 0 (on-demand) and 200."
  }
}

variable "kafka_maximum_pollers" {
  description = "Provisioned mode only (kafka_provisioned_pollers > 0): the most event pollers a Kafka mapping scales up to (1-2000, at least kafka_provisioned_pollers; Lambda's default is 200)."
  type        = number
  default     = 200

  validation {
    condition     = var.kafka_maximum_pollers >= 1 && var.kafka_maximum_pollers <= 2000 && floor(var.kafka_maximum_pollers) == var.kafka_maximum_pollers
    error_message = "kafka_maximum_pollers must be a whole number between 1 and 2000."
  }
}

################################################################################
# Alerts
################################################################################

variable "alert_rules_key" {
  description = "S3 key (inside the lake bucket) of a rules TOML file (SLUICE_RULES_KEY). Empty uses the built-in rules."
  type        = string
  default     = ""
}

variable "alert_emails" {
  description = "Email addresses subscribed to the alert topic. Each one receives a confirmation mail that must be accepted."
  type        = list(string)
  default     = []
}

variable "alert_email_filter_policy" {
  description = "Optional SNS filter policy (JSON) applied to every email subscription, on the message attributes severity, scenario and key. Example: jsonencode({ severity = [\"critical\"] }). Empty delivers every alert."
  type        = string
  default     = ""
}

variable "iterator_age_alarm_ms" {
  description = "Alarm when aggregate falls this far (milliseconds) behind the stream's newest record."
  type        = number
  default     = 300000
}

################################################################################
# Lake, Glue and Athena
################################################################################

# Versioning defaults to off. Lake keys are deterministic (a redelivered batch rewrites the
# same key with identical bytes) and the state objects are protected by conditional writes
# (If-Match / If-None-Match), so versions would mostly store duplicates and cost money.
# Turn it on when protection against accidental deletes is worth that storage.
variable "lake_versioning" {
  description = "Enable S3 versioning on the lake bucket. Off by default: keys are deterministic and redelivery overwrites identical bytes, so versions mostly add cost; state objects use conditional writes instead."
  type        = bool
  default     = false
}

variable "raw_expiration_days" {
  description = "Days after which objects under raw/ expire. 0 keeps them forever."
  type        = number
  default     = 90

  validation {
    condition     = var.raw_expiration_days >= 0
    error_message = "raw_expiration_days must be 0 (never) or a positive number of days."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which noncurrent object versions expire (only matters when lake_versioning is on or was on)."
  type        = number
  default     = 7
}

variable "athena_results_expiration_days" {
  description = "Days after which Athena query results under athena-results/ expire."
  type        = number
  default     = 7
}

variable "glue_tables_json" {
  description = "Path of the Glue table definitions, the output of `sluice schema --format glue` (add `--streams DIR` for your own stream definitions). null uses the module's glue_tables.json (the shipped streams)."
  type        = string
  default     = null
}

variable "projection_start_date" {
  description = "First dt (yyyy-MM-dd) of the Glue partition projection range; the range ends at NOW."
  type        = string
  default     = "2025-01-01"

  validation {
    condition     = can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", var.projection_start_date))
    error_message = "projection_start_date must look like 2025-01-01."
  }
}

variable "athena_bytes_scanned_cutoff" {
  description = "Athena cancels a query in the workgroup once it has scanned this many bytes (minimum 10485760)."
  type        = number
  default     = 10737418240

  validation {
    condition     = var.athena_bytes_scanned_cutoff >= 10485760
    error_message = "athena_bytes_scanned_cutoff must be at least 10485760 (10 MB)."
  }
}
