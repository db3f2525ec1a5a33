/** What the tests that stand in for PagerDuty's Events API share: the fake routing-key secret and a body reader. */
import type { IncomingMessage } from 'node:http';

export const ROUTING_KEY = 'R0utingKey0123456789abcdefABCDEF';
export const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:attempt-ops/pagerduty-AbCdEf';

export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
