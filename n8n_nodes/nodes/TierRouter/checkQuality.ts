/**
 * Operation `checkQuality`: judge each item's answer with `POST /v1/quality`; answers good enough
 * leave on `pass`, the others on `escalate` with the next tier and endpoint under `quality`.
 */
import type { IDataObject, IExecuteFunctions, INodeExecutionData } from 'n8n-workflow';
import { NodeOperationError } from 'n8n-workflow';

import { nodeErrorOf, tierRouterRequest } from '../shared/transport';
import { promptOf } from './prompt';

interface QualityOptions {
	finishReason?: string;
	maxTokens?: number;
	timeout?: number;
}

export async function checkQuality(this: IExecuteFunctions): Promise<INodeExecutionData[][]> {
	const items = this.getInputData();
	const pass: INodeExecutionData[] = [];
	const escalate: INodeExecutionData[] = [];

	for (let itemIndex = 0; itemIndex < items.length; itemIndex++) {
		try {
			const prompt = promptOf(this, itemIndex);
			const response = this.getNodeParameter('response', itemIndex, '') as unknown;
			if (typeof response !== 'string') {
				throw new NodeOperationError(this.getNode(), `Item ${itemIndex} has no answer to check`, {
					itemIndex,
					description: `The Answer parameter must be text, got ${response === null ? 'null' : typeof response}.`,
				});
			}
			const tier = String(this.getNodeParameter('tier', itemIndex, '') ?? '');
			const options = this.getNodeParameter('qualityOptions', itemIndex, {}) as QualityOptions;
			const body: IDataObject = { prompt, response };
			if (tier) body.tier = tier;
			if (options.finishReason) body.finish_reason = options.finishReason;
			if (options.maxTokens) body.max_tokens = options.maxTokens;
			const quality = await tierRouterRequest<IDataObject>(this, {
				method: 'POST',
				path: '/v1/quality',
				body,
				timeoutMs: options.timeout,
				itemIndex,
			});
			const item: INodeExecutionData = {
				json: { ...items[itemIndex].json, quality },
				pairedItem: { item: itemIndex },
			};
			(quality.escalate === true ? escalate : pass).push(item);
		} catch (error) {
			const failure = nodeErrorOf(this, error, itemIndex);
			if (!this.continueOnFail()) throw failure;
			pass.push({
				json: { ...items[itemIndex].json, error: failure.message },
				error: failure,
				pairedItem: { item: itemIndex },
			});
		}
	}
	return [pass, escalate];
}
