/**
 * Operation `recordOutcome`: send one outcome record per item to `POST /v1/feedback` (the prompt,
 * the tier whose model answered, a score from 0 to 1 and optional fields), e.g. after an approval
 * step; tier-router's `train --outcomes` learns from these records.
 */
import type { IDataObject, IExecuteFunctions, INodeExecutionData } from 'n8n-workflow';
import { NodeOperationError } from 'n8n-workflow';

import { nodeErrorOf, tierRouterRequest } from '../shared/transport';
import { CUSTOM_DATA_KEYS } from '../TierRouterChatModel/routingOutput';
import { promptOf } from './prompt';

interface OutcomeOptions {
	answer?: string;
	category?: string;
	endpoint?: string;
	finishReason?: string;
	requestId?: string;
	source?: string;
	timeout?: number;
}

/** One input item after recording, in input order; `failed` when its record was not taken. */
export interface Recorded {
	item: INodeExecutionData;
	failed: boolean;
}

/** The score as a number from 0 to 1 (an expression may give it as text). */
export function scoreOf(ctx: IExecuteFunctions, itemIndex: number): number {
	const value = ctx.getNodeParameter('score', itemIndex, undefined) as unknown;
	const score =
		typeof value === 'number'
			? value
			: typeof value === 'string' && value.trim() !== ''
				? Number(value)
				: Number.NaN;
	if (Number.isFinite(score) && score >= 0 && score <= 1) return score;
	throw new NodeOperationError(
		ctx.getNode(),
		`Item ${itemIndex + 1} has no score between 0 and 1`,
		{
			itemIndex,
			description: `The Score parameter must be a number from 0 (not good enough) to 1 (good enough), got ${JSON.stringify(value) ?? 'nothing'}.`,
		},
	);
}

/**
 * The route of the Tier Router Chat Model's latest answer in this execution (it puts it in the
 * execution's custom data), or undefined when there is none.
 */
export function chatModelRoute(ctx: IExecuteFunctions): Record<string, string> | undefined {
	let route: Record<string, string> = {};
	try {
		for (const [field, key] of Object.entries(CUSTOM_DATA_KEYS)) {
			const value = ctx.customData.get(key);
			if (value !== undefined && value !== '') route[field] = String(value);
		}
	} catch {
		route = {};
	}
	return route.tier ? route : undefined;
}

function tierOf(ctx: IExecuteFunctions, itemIndex: number): string {
	const value = ctx.getNodeParameter('outcomeTier', itemIndex, '') as unknown;
	if (typeof value === 'string' && value.trim() !== '') return value.trim();
	throw new NodeOperationError(ctx.getNode(), `Item ${itemIndex + 1} has no tier`, {
		itemIndex,
		description:
			'The Answered By Tier parameter is empty for this item: point it at the tier that answered, e.g. the item’s routing.tier after Route. After the Tier Router Chat Model it may stay empty, but this execution has no answer of that model.',
	});
}

/** The record for `POST /v1/feedback`: the required fields, then the options that are set. */
export function outcomeBody(ctx: IExecuteFunctions, itemIndex: number): IDataObject {
	const prompt = promptOf(ctx, itemIndex);
	// An empty Answered By Tier after a chain or agent on the Tier Router Chat Model: the tier,
	// request id and endpoint of the model's latest answer (options set here still win).
	const given = ctx.getNodeParameter('outcomeTier', itemIndex, '') as unknown;
	const route = typeof given === 'string' && given.trim() === '' ? chatModelRoute(ctx) : undefined;
	const body: IDataObject = {
		prompt,
		tier: route?.tier ?? tierOf(ctx, itemIndex),
		score: scoreOf(ctx, itemIndex),
	};
	if (route?.request_id) body.request_id = route.request_id;
	if (route?.endpoint) body.endpoint = route.endpoint;
	const options = ctx.getNodeParameter('outcomeOptions', itemIndex, {}) as OutcomeOptions;
	const optional: Array<[keyof OutcomeOptions, string]> = [
		['answer', 'answer'],
		['category', 'category'],
		['endpoint', 'endpoint'],
		['finishReason', 'finish_reason'],
		['requestId', 'request_id'],
		['source', 'source'],
	];
	for (const [option, field] of optional) {
		const value = options[option];
		if (typeof value === 'string' && value !== '') body[field] = value;
	}
	return body;
}

export async function recordItems(this: IExecuteFunctions): Promise<Recorded[]> {
	const items = this.getInputData();
	const recorded: Recorded[] = [];
	for (let itemIndex = 0; itemIndex < items.length; itemIndex++) {
		try {
			const body = outcomeBody(this, itemIndex);
			const options = this.getNodeParameter('outcomeOptions', itemIndex, {}) as OutcomeOptions;
			const answer = await tierRouterRequest<IDataObject>(this, {
				method: 'POST',
				path: '/v1/feedback',
				body,
				timeoutMs: options.timeout,
				itemIndex,
			});
			recorded.push({
				item: {
					json: {
						...items[itemIndex].json,
						outcome: {
							...answer,
							tier: body.tier,
							score: body.score,
							...(body.endpoint !== undefined ? { endpoint: body.endpoint } : {}),
						},
					},
					pairedItem: { item: itemIndex },
				},
				failed: false,
			});
		} catch (error) {
			const failure = nodeErrorOf(this, error, itemIndex);
			if (!this.continueOnFail()) throw failure;
			recorded.push({
				item: {
					json: { ...items[itemIndex].json, error: failure.message },
					error: failure,
					pairedItem: { item: itemIndex },
				},
				failed: true,
			});
		}
	}
	return recorded;
}

/** The `recorded` and `failed` outputs. */
export function onRecordOutputs(recorded: Recorded[]): INodeExecutionData[][] {
	return [
		recorded.filter((entry) => !entry.failed).map((entry) => entry.item),
		recorded.filter((entry) => entry.failed).map((entry) => entry.item),
	];
}
