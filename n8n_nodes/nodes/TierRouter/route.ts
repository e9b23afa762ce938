/**
 * Operation `route`: ask tier-router which tier should answer each item, through
 * `POST /v1/route/batch` in chunks of `batchSize`, and put each item on its tier's output with the
 * decision under `routing`.
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
		request_id: String(decision.request_id),
	};
}

export async function route(
	this: IExecuteFunctions,
	tiers: string[],
): Promise<INodeExecutionData[][]> {
	const items = this.getInputData();
	const outputs: INodeExecutionData[][] = tiers.map(() => []);
	const failed = (itemIndex: number, error: NodeApiError | NodeOperationError) => {
		// Failed items leave on the first output (n8n moves them to the error output when the
		// node's "On Error" setting asks for one).
		outputs[0].push({
			json: { ...items[itemIndex].json, error: error.message },
			error,
			pairedItem: { item: itemIndex },
		});
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
					`tier-router rejected item ${itemIndex}: ${detail}`,
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
			const output = tiers.indexOf(routing.tier);
			if (output < 0) {
				const error = new NodeOperationError(
					this.getNode(),
					`tier-router chose tier '${routing.tier}', which has no output here`,
					{
						itemIndex,
						description: `The node's tiers are ${tiers.join(', ')}. Add '${routing.tier}' to "Tiers" (the list comes from the service's portfolio).`,
					},
				);
				if (!this.continueOnFail()) throw error;
				failed(itemIndex, error);
				return;
			}
			outputs[output].push({
				json: { ...items[itemIndex].json, routing },
				pairedItem: { item: itemIndex },
			});
		});
	}
	return outputs;
}
