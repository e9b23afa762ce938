/**
 * The Tier Router node's parameters and its outputs. The outputs depend on the parameters: one per
 * tier for `route`, `pass` and `escalate` for `checkQuality`; n8n evaluates `outputsExpression`
 * in the editor and at run time alike, and `outputNamesFor` computes the same list in `execute`.
 */
import type { INodeProperties } from 'n8n-workflow';
import { NodeConnectionTypes } from 'n8n-workflow';

import { DEFAULT_TIMEOUT_MS } from '../shared/transport';
import { outcomeProperties } from './outcomeDescription';

export const DEFAULT_TIERS = ['simple', 'medium', 'complex'];
export const QUALITY_OUTPUTS = ['pass', 'escalate'];
export const RECORD_OUTPUTS = ['recorded'];
/**
 * The last output of every operation: with On Error = Continue, items that failed leave here,
 * never on a branch with valid items (a tier's model, or the next tier's, would fail on them).
 * With Continue (using error output) n8n moves them to its error output instead.
 */
export const FAILED_OUTPUT = 'failed';
export const DEFAULT_BATCH_SIZE = 64;

export type Operation = 'route' | 'checkQuality' | 'recordOutcome';

/** The names of the node's outputs, in order, for the given parameters (`failed` last). */
export function outputNamesFor(operation: Operation, tiers: unknown): string[] {
	if (operation === 'checkQuality') return [...QUALITY_OUTPUTS, FAILED_OUTPUT];
	if (operation === 'recordOutcome') return [...RECORD_OUTPUTS, FAILED_OUTPUT];
	if (Array.isArray(tiers) && tiers.length > 0) return [...tiers.map(String), FAILED_OUTPUT];
	return [...DEFAULT_TIERS, FAILED_OUTPUT];
}

// The same rule as outputNamesFor, as the n8n expression the editor evaluates.
export const outputsExpression =
	(`={{ ($parameter.operation === 'checkQuality' ? ${JSON.stringify(QUALITY_OUTPUTS)}` +
		` : $parameter.operation === 'recordOutcome' ? ${JSON.stringify(RECORD_OUTPUTS)}` +
		` : (Array.isArray($parameter.tiers) && $parameter.tiers.length > 0` +
		` ? $parameter.tiers : ${JSON.stringify(DEFAULT_TIERS)}))` +
		`.concat(['${FAILED_OUTPUT}'])` +
		`.map((name) => ({ type: '${NodeConnectionTypes.Main}', displayName: String(name) })) }}`) as `={{${string}}}`;

const timeoutOption: INodeProperties = {
	displayName: 'Timeout (Ms)',
	name: 'timeout',
	type: 'number',
	typeOptions: { minValue: 1 },
	default: DEFAULT_TIMEOUT_MS,
	description: 'How long to wait for tier-router, in milliseconds',
};

export const properties: INodeProperties[] = [
	{
		displayName: 'Operation',
		name: 'operation',
		type: 'options',
		noDataExpression: true,
		default: 'route',
		options: [
			{
				name: 'Route',
				value: 'route',
				action: 'Route items to a tier',
				description: 'Send each item to the output of the tier tier-router chose for its prompt',
			},
			{
				name: 'Check Quality',
				value: 'checkQuality',
				action: 'Check an answer and decide whether to escalate',
				description:
					'Judge a cheaper model’s answer; items that should go one tier up leave on the escalate output',
			},
			{
				name: 'Record Outcome',
				value: 'recordOutcome',
				action: 'Record whether an answer was good enough',
				description:
					'Send an outcome record (prompt, answering tier, score) to tier-router’s feedback log, e.g. after an approval step, to train a router on',
			},
		],
	},
	{
		displayName: 'Prompt',
		name: 'prompt',
		type: 'string',
		typeOptions: { rows: 2 },
		default: '={{ $json.prompt }}',
		required: true,
		description:
			'The text to route or the question that was answered. By default the prompt field of the item; any field or expression works.',
	},
	...outcomeProperties,
	{
		displayName: 'Tier Names or IDs',
		name: 'tiers',
		type: 'multiOptions',
		typeOptions: { loadOptionsMethod: 'getTiers' },
		default: ['simple', 'medium', 'complex'],
		displayOptions: { show: { operation: ['route'] } },
		description:
			'One output per tier, in the order of this field: n8n keeps the order you pick tiers in, so pick them cheapest first (the list offers them in the portfolio’s order). Choose from the list, or specify IDs using an <a href="https://docs.n8n.io/code/expressions/">expression</a>.',
	},
	{
		displayName: 'Batch Size',
		name: 'batchSize',
		type: 'number',
		typeOptions: { minValue: 1 },
		default: DEFAULT_BATCH_SIZE,
		displayOptions: { show: { operation: ['route'] } },
		description: 'How many items go to tier-router in one request to /v1/route/batch',
	},
	{
		displayName: 'Options',
		name: 'options',
		type: 'collection',
		placeholder: 'Add option',
		default: {},
		displayOptions: { show: { operation: ['route'] } },
		options: [
			{
				displayName: 'Agent',
				name: 'agent',
				type: 'string',
				default: '',
				description:
					'The agent the request comes from; the portfolio can pin an agent to a tier or an endpoint',
			},
			{
				displayName: 'Maximum Tier',
				name: 'maxTier',
				type: 'string',
				default: '',
				description: 'Never route above this tier',
			},
			{
				displayName: 'Minimum Tier',
				name: 'minTier',
				type: 'string',
				default: '',
				description: 'Never route below this tier',
			},
			timeoutOption,
		],
	},
	{
		displayName: 'Answer',
		name: 'response',
		type: 'string',
		typeOptions: { rows: 2 },
		default: '={{ $json.text }}',
		required: true,
		displayOptions: { show: { operation: ['checkQuality'] } },
		description: 'The answer to check. A Basic LLM Chain puts it in text, an AI Agent in output.',
	},
	{
		displayName: 'Answered By Tier',
		name: 'tier',
		type: 'string',
		default: '',
		displayOptions: { show: { operation: ['checkQuality'] } },
		description:
			'The tier whose model wrote the answer; escalation goes one tier up from it. Empty means the cheapest tier.',
	},
	{
		displayName: 'Options',
		name: 'qualityOptions',
		type: 'collection',
		placeholder: 'Add option',
		default: {},
		displayOptions: { show: { operation: ['checkQuality'] } },
		options: [
			{
				displayName: 'Finish Reason',
				name: 'finishReason',
				type: 'string',
				default: '',
				description: 'Why the model stopped (stop, length, ...); length marks a cut-off answer',
			},
			{
				displayName: 'Max Tokens',
				name: 'maxTokens',
				type: 'number',
				typeOptions: { minValue: 1 },
				default: 256,
				description:
					'The token cap you gave the model, if any: an answer at your own cap is not cut off',
			},
			timeoutOption,
		],
	},
];
