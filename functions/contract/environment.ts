/**
 * The environment variables the CDK stack sets and the handlers read: one list, so the two sides
 * cannot disagree on a name.
 */
export const ENV = {
  /** ARN of the Secrets Manager secret in the RDS format (host, port, username, password, dbname). */
  dbSecretArn: 'ATTEMPT_OPS_DB_SECRET_ARN',
  /**
   * Seconds a secret read from Secrets Manager (database, PagerDuty routing key) is used before it
   * is read again, so a rotation reaches warm containers (default 300; 0 reads it on every run).
   */
  secretMaxAgeSeconds: 'ATTEMPT_OPS_SECRET_MAX_AGE_SECONDS',
  /** disable | require | verify-full (default verify-full in Lambda). */
  dbTls: 'ATTEMPT_OPS_DB_TLS',
  /** Optional PEM bundle; in Lambda NODE_EXTRA_CA_CERTS already carries the RDS CAs. */
  dbCaFile: 'ATTEMPT_OPS_DB_CA_FILE',
  /** The Database dimension. */
  target: 'ATTEMPT_OPS_TARGET',
  namespace: 'ATTEMPT_OPS_NAMESPACE',
  schema: 'ATTEMPT_OPS_SCHEMA',
  appRole: 'ATTEMPT_OPS_APP_ROLE',
  /** none | stdout | cloudwatch (cloudwatch in Lambda). */
  metrics: 'ATTEMPT_OPS_METRICS',
  /** Default statement_timeout of the job's sessions (ms). */
  statementTimeoutMs: 'ATTEMPT_OPS_STATEMENT_TIMEOUT_MS',
  lockTimeoutMs: 'ATTEMPT_OPS_LOCK_TIMEOUT_MS',
  connectTimeoutMs: 'ATTEMPT_OPS_CONNECT_TIMEOUT_MS',
  logLevel: 'ATTEMPT_OPS_LOG_LEVEL',
  /** PagerDuty forwarder: the secret that holds the Events API v2 routing key. */
  pagerDutySecretArn: 'ATTEMPT_OPS_PAGERDUTY_SECRET_ARN',
  /** PagerDuty forwarder: Events API endpoint (overridable for tests). */
  pagerDutyEventsUrl: 'ATTEMPT_OPS_PAGERDUTY_EVENTS_URL',
  /** Base URL of the runbook; check and alarm anchors are appended. */
  runbookUrl: 'ATTEMPT_OPS_RUNBOOK_URL',
  /** on | off (default on): whether bootstrap installs the change capture (docs/INCREMENTAL_REFRESH.md). */
  capture: 'ATTEMPT_OPS_CAPTURE',
} as const;
