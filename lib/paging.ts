/**
 * Where alarms go (CONTRACT.md section 6): three SNS topics, KMS-encrypted and SSL-only, and the
 * PagerDuty forwarder on critical and warning. A page that the forwarder cannot deliver after
 * Lambda's retries lands in an encrypted queue, which has its own alarm, so paging never fails
 * silently.
 */
import { Duration, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { SqsDestination } from 'aws-cdk-lib/aws-lambda-destinations';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ENV, topicFor, type PagingTopic, type Severity } from '../functions/contract/index.ts';
import { deployedFunctionName, FORWARDER } from '../functions/contract/schedules.ts';
import { JobFunction } from './job-function.ts';
import { nagId } from './nag.ts';

export const PAGING_TOPICS: readonly PagingTopic[] = ['critical', 'warning', 'info'];

export interface PagingProps {
  readonly target: string;
  /** Base URL of the runbook, for the links the forwarder attaches. */
  readonly runbookUrl: string;
  readonly logRetention: logs.RetentionDays;
  /** Secret with the Events API v2 routing key. @default no forwarder */
  readonly routingKeySecretArn?: string;
  /** Key of that secret, when it is a customer managed key. @default the AWS managed key */
  readonly routingKeySecretKmsKeyArn?: string;
  /** A PagerDuty CloudWatch integration URL, subscribed to critical and warning. @default none */
  readonly pagerDutyCloudWatchUrl?: string;
  /** Email subscriptions on the info topic. @default none */
  readonly infoEmails?: readonly string[];
}

export class Paging extends Construct {
  readonly key: kms.Key;
  readonly topics: Readonly<Record<PagingTopic, sns.Topic>>;
  readonly forwarder?: JobFunction;
  /** Events the forwarder gave up on. */
  readonly undelivered?: sqs.Queue;

  constructor(scope: Construct, id: string, props: PagingProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.key = new kms.Key(this, 'Key', {
      description: `attempt-ops ${props.target}: alarm topics`,
      enableKeyRotation: true,
    });
    // CloudWatch publishes alarm notifications as itself, so it needs the key to encrypt them.
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
    );

    const topic = (name: PagingTopic) => {
      const t = new sns.Topic(this, `${name[0]!.toUpperCase()}${name.slice(1)}Topic`, {
        topicName: `attempt-ops-${props.target}-${name}`,
        displayName: `attempt-ops ${props.target} ${name}`,
        masterKey: this.key,
        enforceSSL: true,
      });
      t.addToResourcePolicy(
        new iam.PolicyStatement({
          sid: 'AllowCloudWatchAlarms',
          principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
          actions: ['sns:Publish'],
          resources: [t.topicArn],
          conditions: {
            StringEquals: { 'aws:SourceAccount': stack.account },
            ArnLike: { 'aws:SourceArn': `arn:${stack.partition}:cloudwatch:${stack.region}:${stack.account}:alarm:*` },
          },
        }),
      );
      return t;
    };
    this.topics = { critical: topic('critical'), warning: topic('warning'), info: topic('info') };

    if (props.routingKeySecretArn) {
      this.undelivered = new sqs.Queue(this, 'UndeliveredPages', {
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        retentionPeriod: Duration.days(14),
      });
      Validations.of(this.undelivered).acknowledge({
        id: nagId('AwsSolutions-SQS3'),
        reason: "This queue is itself the forwarder's failure destination; a dead-letter queue behind it would only move the same messages.",
      });
      const forwarder = new JobFunction(this, 'Forwarder', {
        entryName: FORWARDER,
        functionName: deployedFunctionName(props.target, FORWARDER),
        description: `attempt-ops ${props.target}: CloudWatch alarms to PagerDuty Events API v2`,
        timeout: Duration.seconds(30),
        memoryMb: 128,
        logRetention: props.logRetention,
        // Not in the VPC: it only talks to Secrets Manager and PagerDuty, over the internet.
        retryAttempts: 2,
        onFailure: new SqsDestination(this.undelivered),
        environment: { [ENV.runbookUrl]: props.runbookUrl },
      });
      const secret = secretsmanager.Secret.fromSecretCompleteArn(this, 'RoutingKey', props.routingKeySecretArn);
      forwarder.grantSecretRead(secret, props.routingKeySecretKmsKeyArn);
      forwarder.function.addEnvironment(ENV.pagerDutySecretArn, secret.secretArn);
      for (const name of ['critical', 'warning'] as const) {
        this.topics[name].addSubscription(new subscriptions.LambdaSubscription(forwarder.function));
      }
      this.forwarder = forwarder;
    }

    if (props.pagerDutyCloudWatchUrl) {
      for (const name of ['critical', 'warning'] as const) {
        this.topics[name].addSubscription(
          new subscriptions.UrlSubscription(props.pagerDutyCloudWatchUrl, { protocol: sns.SubscriptionProtocol.HTTPS }),
        );
      }
    }
    for (const email of props.infoEmails ?? []) {
      this.topics.info.addSubscription(new subscriptions.EmailSubscription(email));
    }
  }

  /** The topic an alarm of this severity notifies, for ALARM and OK alike. */
  topicFor(severity: Severity): sns.Topic {
    return this.topics[topicFor(severity)];
  }
}
