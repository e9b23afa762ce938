/**
 * Operation `checkQuality`: judge each item's answer with `POST /v1/quality`; answers good enough
 * leave on `pass`, the others on `escalate` with the next tier and endpoint under `quality`.
 *
 * A check that failed (Continue On Fail) leaves on `failed`, with `error` and without `quality`:
 * an answer nobody checked is never passed on as good, and an item without a prompt never reaches
 * the escalate branch's model. (With "Continue (using error output)" n8n moves these items to the
 * error output instead.)
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

/** One input item after its check, in input order. */
export interface Checked {
	item: INodeExecutionData;
	/** True when the answer should go one tier up. */
	escalate: boolean;
	/** True when checking it failed (Continue On Fail). */
	failed?: boolean;
}

export async function checkItems(this: IExecuteFunctions): Promise<Checked[]> {
	const items = this.getInputData();
	const checked: Checked[] = [];

	for (let itemIndex = 0; itemIndex < items.length; itemIndex++) {
		try {
			const prompt = promptOf(this, itemIndex);
			const response = this.getNodeParameter('response', itemIndex, '') as unknown;
			if (typeof response !== 'string') {
				throw new NodeOperationError(
					this.getNode(),
					`Item ${itemIndex + 1} has no answer to check`,
					{
						itemIndex,
						description: `The Answer parameter must be text, got ${response === null ? 'null' : typeof response}.`,
					},
				);
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
			checked.push({ item, escalate: quality.escalate === true });
		} catch (error) {
			const failure = nodeErrorOf(this, error, itemIndex);
			if (!this.continueOnFail()) throw failure;
			checked.push({
				item: {
					json: { ...items[itemIndex].json, error: failure.message },
					error: failure,
					pairedItem: { item: itemIndex },
				},
				escalate: false,
				failed: true,
			});
		}
	}
	return checked;
}

/** The `pass`, `escalate` and `failed` outputs. */
export function onQualityOutputs(checked: Checked[]): INodeExecutionData[][] {
	const ok = checked.filter((entry) => entry.failed !== true);
	return [
		ok.filter((entry) => !entry.escalate).map((entry) => entry.item),
		ok.filter((entry) => entry.escalate).map((entry) => entry.item),
		checked.filter((entry) => entry.failed === true).map((entry) => entry.item),
	];
}
