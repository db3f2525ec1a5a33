/**
 * cdk-nag (AwsSolutions) acknowledgements are made next to the construct they concern, each with
 * its reason; this module only spells the rule ids the way cdk-nag 3 reports them.
 */

/** The id an acknowledgement must use for an AwsSolutions rule (optionally with a finding). */
export function nagId(rule: string): string {
  return `AwsSolutions::${rule}`;
}
