/** What the incident-tooling tests share: state digests that prove a dry run touched nothing, and sessions to hold. */
import pg from 'pg';
import { catalogChecksum } from '../jobs/helpers.ts';

/**
 * Everything a fix could change, digested part by part so a failure names the part: the rows of
 * the base tables and of our own tables in physical order (a moved row changes its ctid), the
 * catalog (relations, kinds, ACLs, indexes and their validity, schemas and their ACLs), the view's
 * definition, manual ANALYZE counters, and which backends are running what.
 */
export async function stateDigest(client: pg.Client): Promise<Record<string, string>> {
  const tables = await client.query<{ rel: string }>(
    `SELECT c.oid::regclass::text AS rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname IN ('public', 'attempt_ops') ORDER BY 1`,
  );
  const digest: Record<string, string> = {};
  for (const { rel } of tables.rows) {
    const { rows } = await client.query<{ d: string }>(`SELECT md5(coalesce(string_agg(t.ctid::text || ' ' || t::text, E'\\n' ORDER BY t.ctid), '')) AS d FROM ${rel} t`);
    digest[`rows ${rel}`] = rows[0]!.d;
  }
  digest.catalog = await catalogChecksum(client);
  const more = await client.query<{ viewdef: string | null; analyzed: string; sessions: string }>(
    `SELECT (SELECT pg_get_viewdef(to_regclass('public.attempt'))) AS viewdef,
            (SELECT string_agg(relname || ' ' || analyze_count || ' ' || coalesce(last_analyze::text, '-'), ', ' ORDER BY relname)
               FROM pg_stat_user_tables WHERE schemaname = 'public') AS analyzed,
            (SELECT string_agg(pid || ' ' || coalesce(query_start::text, '-'), ', ' ORDER BY pid) FROM pg_stat_activity
              WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid() AND application_name NOT LIKE 'attempt-ops/%') AS sessions`,
  );
  digest.viewdef = more.rows[0]!.viewdef ?? '(no view)';
  digest.analyzed = more.rows[0]!.analyzed ?? '';
  digest.sessions = more.rows[0]!.sessions ?? '';
  return digest;
}

/** The rows of exam_results as a multiset: the same rows in any physical order give the same digest. */
export async function rowMultiset(client: pg.Client, relation = 'exam_results', columns = 'id, student_id, result_json, completed_at'): Promise<{ rows: number; digest: string }> {
  const { rows } = await client.query<{ n: string; d: string }>(
    `SELECT count(*) AS n, md5(coalesce(string_agg(r, E'\\n' ORDER BY r), '')) AS d FROM (SELECT (${columns})::text AS r FROM ${relation}) x`,
  );
  return { rows: Number(rows[0]!.n), digest: rows[0]!.d };
}

export interface Session {
  client: pg.Client;
  pid: number;
  end(): Promise<void>;
}

/** A separate connection, as another application would hold one. */
export async function session(url: string, applicationName = 'psql'): Promise<Session> {
  const client = new pg.Client({ connectionString: url, application_name: applicationName });
  client.on('error', () => undefined);
  await client.connect();
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return { client, pid: rows[0]!.pid, end: () => client.end().catch(() => undefined) };
}

export async function waitFor(what: string, probe: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
