/**
 * The parameters of operation `recordOutcome` (besides the shared Prompt): which tier answered,
 * how good the answer was, and the optional fields of an outcome record.
 */
import type { INodeProperties } from 'n8n-workflow';

import { DEFAULT_TIMEOUT_MS } from '../shared/transport';

const show = { show: { operation: ['recordOutcome'] } };

export const outcomeProperties: INodeProperties[] = [
	{
		displayName: 'Answered By Tier',
		name: 'outcomeTier',
		type: 'string',
		default: '',
		displayOptions: show,
		description:
			'The portfolio tier whose model answered (the item’s routing.tier after the Route operation). Leave it empty after a chain or agent on the Tier Router Chat Model: the tier, request ID and endpoint of the model’s latest answer are used.',
	},
	{
		displayName: 'Score',
		name: 'score',
		type: 'number',
		typeOptions: { minValue: 0, maxValue: 1, numberPrecision: 2 },
		default: 1,
		required: true,
		displayOptions: show,
		description:
			'How good the answer was, from 0 to 1: 1 good enough, 0 not, 0.5 a tie (or any graded score); after an approval step, an expression that turns its decision into 1 or 0',
	},
	{
		displayName: 'Options',
		name: 'outcomeOptions',
		type: 'collection',
		placeholder: 'Add option',
		default: {},
		displayOptions: show,
		options: [
			{
				displayName: 'Answer',
				name: 'answer',
				type: 'string',
				typeOptions: { rows: 2 },
				default: '',
				description:
					'The answer that was judged (the text field of a Basic LLM Chain’s output): lets training learn an answer check',
			},
			{
				displayName: 'Category',
				name: 'category',
				type: 'string',
				default: '',
				description: 'The task kind, if you know it (after Route, the item’s routing.category)',
			},
			{
				displayName: 'Endpoint',
				name: 'endpoint',
				type: 'string',
				default: '',
				description: 'The portfolio endpoint that answered',
			},
			{
				displayName: 'Finish Reason',
				name: 'finishReason',
				type: 'string',
				default: '',
				description: 'Why the model stopped (stop, length, ...)',
			},
			{
				displayName: 'Request ID',
				name: 'requestId',
				type: 'string',
				default: '',
				description:
					'The request ID of the decision or answer, to tie the outcome to tier-router’s logs: the item’s routing.request_id after Route (after the chat model, with Answered By Tier empty, its answer’s ID is used)',
			},
			{
				displayName: 'Source',
				name: 'source',
				type: 'options',
				options: [
					{ name: 'User', value: 'user', description: 'A person judged the answer' },
					{ name: 'Judge', value: 'judge', description: 'A judge model compared answers' },
					{ name: 'Check', value: 'check', description: 'An automatic check decided' },
				],
				default: 'user',
				description: 'Who scored the answer',
			},
			{
				displayName: 'Timeout (Ms)',
				name: 'timeout',
				type: 'number',
				typeOptions: { minValue: 1 },
				default: DEFAULT_TIMEOUT_MS,
				description: 'How long to wait for tier-router, in milliseconds',
			},
		],
	},
];
