/**
 * EventBridge rules that run the jobs. Each rule sends the payload the contract types for its job
 * (functions/contract/schedules.ts), so the function sees exactly what a manual invoke would send.
 */
import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import type { ScheduleSpec } from '../functions/contract/schedules.ts';

export interface JobSchedulesProps {
  readonly target: string;
}

export interface AddedSchedule {
  readonly spec: ScheduleSpec;
  readonly rateMinutes: number;
  readonly rule: events.Rule;
}

export class JobSchedules extends Construct {
  readonly added: AddedSchedule[] = [];
  private readonly target: string;

  constructor(scope: Construct, id: string, props: JobSchedulesProps) {
    super(scope, id);
    this.target = props.target;
  }

  addSchedule(spec: ScheduleSpec, fn: lambda.IFunction, rateMinutes: number): events.Rule {
    const rule = new events.Rule(this, spec.id, {
      ruleName: `attempt-ops-${this.target}-${spec.id}`,
      description: `attempt-ops ${this.target}: ${spec.job}, ${spec.description}`,
      schedule: events.Schedule.rate(Duration.minutes(rateMinutes)),
      targets: [
        new targets.LambdaFunction(fn, {
          event: events.RuleTargetInput.fromObject(spec.payload),
          // An event older than one period is superseded by the next run; delivering it late
          // would only run the job twice back to back.
          maxEventAge: Duration.minutes(Math.max(1, Math.min(rateMinutes, 24 * 60))),
          retryAttempts: 2,
        }),
      ],
    });
    this.added.push({ spec, rateMinutes, rule });
    return rule;
  }
}
