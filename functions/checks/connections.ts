import { CHECK_SPECS } from '../contract/index.ts';
import type { HealthCheck } from './types.ts';

export const CONNECTIONS_SQL = `
  SELECT count(*) AS total, count(*) FILTER (WHERE state = 'active') AS active,
         count(*) FILTER (WHERE state LIKE 'idle in transaction%') AS idle_in_transaction,
         current_setting('max_connections')::int AS max_connections
    FROM pg_stat_activity WHERE backend_type = 'client backend'`;

/** Runbook "Monitoring & Alerts": more than 100 connections (baseline 50). */
export const connections: HealthCheck = {
  spec: CHECK_SPECS.connections,
  async measure({ db }) {
    const { rows } = await db.query<{ total: string; active: string; idle_in_transaction: string; max_connections: number }>(CONNECTIONS_SQL);
    const r = rows[0];
    const total = Number(r?.total ?? 0);
    return {
      value: total,
      message: `${total} client connection(s) (${r?.active ?? 0} active, max_connections ${r?.max_connections ?? '?'})`,
      details: [{ active: Number(r?.active ?? 0), idleInTransaction: Number(r?.idle_in_transaction ?? 0), maxConnections: r?.max_connections }],
    };
  },
};
