/**
 * Operation `route`: ask tier-router which tier should answer each item, through
 * `POST /v1/route/batch` in chunks of `batchSize`, and put each item on its tier's output with the
 * decision under `routing` (or, when the node runs as an AI Agent's tool, all on one output).
 */
import type { IDataObject, IExecuteFunctions, INodeExecutionData } from 'n8n-workflow';
import { NodeApiError, NodeOperationError } from 'n8n-workflow';

import { detailOf, nodeErrorOf, tierRouterRequest } from '../shared/transport';
import { DEFAULT_BATCH_SIZE } from './description';
import { promptOf } from './prompt';

/** What the node puts under `routing` on each item: the decision, trimmed to what a workflow needs. */
export interface Routing extends IDataObject {
	tier: string;
	confidence: number;
	category: string | null;
	endpoint: IDataObject;
	fallback: IDataObject[];
	reason: string;
	/** What moved the choice after the classifier (agent pins, min/max tier, ...). */
	adjustments: string[];
	/** The decision in a sentence. */
	reason_detail: string;
	request_id: string;
}

interface RouteOptions {
	agent?: string;
	minTier?: string;
	maxTier?: string;
	timeout?: number;
}

interface ItemError {
	error: { status?: number; detail?: unknown };
}

type BatchResult = (IDataObject & { tier?: string }) | ItemError;

interface Pending {
	itemIndex: number;
	body: IDataObject;
}

function requestBody(prompt: string, options: RouteOptions): IDataObject {
	const body: IDataObject = { prompt };
	if (options.agent) body.agent = options.agent;
	if (options.minTier) body.min_tier = options.minTier;
	if (options.maxTier) body.max_tier = options.maxTier;
	return body;
}

function routingOf(decision: IDataObject): Routing {
	return {
		tier: String(decision.tier),
		confidence: Number(decision.confidence),
		category: (decision.category as string | null | undefined) ?? null,
		endpoint: (decision.endpoint as IDataObject) ?? {},
		fallback: (decision.fallback as IDataObject[]) ?? [],
		reason: String(decision.reason),
		adjustments: (decision.adjustments as string[] | undefined) ?? [],
		reason_detail: String(decision.reason_detail ?? ''),
		request_id: String(decision.request_id),
	};
}

/** One input item after routing: `tier` is the chosen tier, absent when routing it failed. */
export interface Routed {
	item: INodeExecutionData;
	tier?: string;
}

/**
 * Routes every input item and returns them in input order, each with its decision under `routing`
 * or, for an item that failed under Continue On Fail, with `error`.
 */
export async function routeItems(this: IExecuteFunctions): Promise<Routed[]> {
	const items = this.getInputData();
	const routed: Array<Routed | undefined> = items.map(() => undefined);
	const failed = (itemIndex: number, error: NodeApiError | NodeOperationError) => {
		routed[itemIndex] = {
			item: {
				json: { ...items[itemIndex].json, error: error.message },
				error,
				pairedItem: { item: itemIndex },
			},
		};
	};

	const pending: Pending[] = [];
	for (let itemIndex = 0; itemIndex < items.length; itemIndex++) {
		try {
			const prompt = promptOf(this, itemIndex);
			const options = this.getNodeParameter('options', itemIndex, {}) as RouteOptions;
			pending.push({ itemIndex, body: requestBody(prompt, options) });
		} catch (error) {
			const wrapped = nodeErrorOf(this, error, itemIndex);
			if (!this.continueOnFail()) throw wrapped;
			failed(itemIndex, wrapped);
		}
	}

	const batchSize = Math.max(
		1,
		Math.floor(this.getNodeParameter('batchSize', 0, DEFAULT_BATCH_SIZE) as number),
	);
	for (let start = 0; start < pending.length; start += batchSize) {
		const chunk = pending.slice(start, start + batchSize);
		const first = chunk[0].itemIndex;
		const options = this.getNodeParameter('options', first, {}) as RouteOptions;
		let results: BatchResult[];
		try {
			const answer = await tierRouterRequest<{ results?: BatchResult[] }>(this, {
				method: 'POST',
				path: '/v1/route/batch',
				body: { items: chunk.map((entry) => entry.body) },
				timeoutMs: options.timeout,
				itemIndex: first,
			});
			results = answer.results ?? [];
			if (results.length !== chunk.length) {
				throw new NodeOperationError(
					this.getNode(),
					`tier-router answered ${results.length} results for ${chunk.length} items`,
					{ itemIndex: first },
				);
			}
		} catch (error) {
			const failure = nodeErrorOf(this, error, first);
			if (!this.continueOnFail()) throw failure;
			for (const entry of chunk) failed(entry.itemIndex, failure);
			continue;
		}

		results.forEach((result, position) => {
			const { itemIndex } = chunk[position];
			const itemError = (result as ItemError).error;
			if (itemError) {
				const detail = detailOf(itemError) ?? 'invalid request';
				const error = new NodeOperationError(
					this.getNode(),
					`tier-router rejected item ${itemIndex + 1}: ${detail}`,
					{
						itemIndex,
						description: `HTTP ${itemError.status ?? 422} for this item of /v1/route/batch`,
					},
				);
				if (!this.continueOnFail()) throw error;
				failed(itemIndex, error);
				return;
			}
			const routing = routingOf(result as IDataObject);
			routed[itemIndex] = {
				tier: routing.tier,
				item: { json: { ...items[itemIndex].json, routing }, pairedItem: { item: itemIndex } },
			};
		});
	}
	return routed.filter((entry): entry is Routed => entry !== undefined);
}

/**
 * Operation `route` on the node's outputs: each item on its tier's output. An item whose routing
 * failed (Continue On Fail: the service down, an empty prompt, a tier without an output) leaves
 * on the last output, `failed`, of its own: never on a tier's branch, where the cheapest model
 * would answer a prompt nobody judged, or a model would fail on it and take that tier's valid
 * items down with it. (With "Continue (using error output)" n8n moves these items to its error
 * output instead.) `outputs` has one name per tier, then `failed`.
 */
export function onTierOutputs(
	ctx: IExecuteFunctions,
	routed: Routed[],
	names: string[],
): INodeExecutionData[][] {
	const outputs: INodeExecutionData[][] = names.map(() => []);
	const tiers = names.slice(0, -1);
	const failed = outputs[outputs.length - 1];
	for (const { item, tier } of routed) {
		if (tier === undefined) {
			failed.push(item);
			continue;
		}
		const output = tiers.indexOf(tier);
		if (output >= 0) {
			outputs[output].push(item);
			continue;
		}
		const itemIndex = (item.pairedItem as { item: number }).item;
		const error = new NodeOperationError(
			ctx.getNode(),
			`tier-router chose tier '${tier}', which has no output here`,
			{
				itemIndex,
				description: `The node's tiers are ${tiers.join(', ')}. Add '${tier}' to "Tiers" (the list comes from the service's portfolio).`,
			},
		);
		if (!ctx.continueOnFail()) throw error;
		failed.push({ ...item, json: { ...item.json, error: error.message }, error });
	}
	return outputs;
}
