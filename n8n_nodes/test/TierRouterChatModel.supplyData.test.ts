/**
 * The chat model node as n8n calls it: `supplyData` with the node's options, then one model call
 * through the credential's request helper.
 */
import type { IDataObject, IHttpRequestOptions, ISupplyDataFunctions } from 'n8n-workflow';
import { NodeApiError } from 'n8n-workflow';
import { describe, expect, it } from 'vitest';
import { mockDeep } from 'vitest-mock-extended';

import type { GatewayChatModel } from '../nodes/TierRouterChatModel/model';
import {
	CHAT_MODEL_TIMEOUT_MS,
	TierRouterChatModel,
} from '../nodes/TierRouterChatModel/TierRouterChatModel.node';
import { NODE } from './context';

function supplyContext(options: IDataObject, handler: (request: IHttpRequestOptions) => unknown) {
	const ctx = mockDeep<ISupplyDataFunctions>();
	const requests: IHttpRequestOptions[] = [];
	ctx.getNode.mockReturnValue({ ...NODE, type: 'n8n-nodes-tier-router.tierRouterChatModel' });
	ctx.getCredentials.mockResolvedValue({ baseUrl: 'http://127.0.0.1:8700/v1/', apiKey: 'k' });
	ctx.getNodeParameter.mockImplementation(((
		name: string,
		_itemIndex: number,
		fallback?: unknown,
	) =>
		name === 'options'
			? options
			: name === 'model'
				? 'auto'
				: fallback) as ISupplyDataFunctions['getNodeParameter']);
	ctx.helpers.httpRequestWithAuthentication.mockImplementation(async function (
		this: unknown,
		credential: string,
		request: IHttpRequestOptions,
	) {
		if (credential !== 'tierRouterApi') throw new Error(`unexpected credential ${credential}`);
		requests.push(request);
		return handler(request);
	});
	return { ctx, requests };
}

const ANSWER = {
	id: 'chatcmpl-1',
	choices: [{ message: { role: 'assistant', content: 'Paris.' }, finish_reason: 'stop' }],
	tier_router: { endpoint: 'llama3-8b', tier: 'simple', reason: 'classifier', escalations: 0 },
};

/** The GatewayChatModel that supplyData hands to n8n (inside the SDK's LangChain adapter). */
async function supplied(ctx: ISupplyDataFunctions): Promise<GatewayChatModel> {
	const data = await new TierRouterChatModel().supplyData.call(ctx, 0);
	return (data.response as { chatModel: GatewayChatModel }).chatModel;
}

const QUESTION = [
	{ role: 'user' as const, content: [{ type: 'text' as const, text: 'Capital?' }] },
];

describe('Tier Router Chat Model: supplyData', () => {
	it('maps agent and tier bounds to the route headers and sends the Timeout option', async () => {
		const { ctx, requests } = supplyContext(
			{ agent: 'support', minTier: 'medium', maxTier: 'complex', timeout: 4321 },
			() => ANSWER,
		);
		const result = await (await supplied(ctx)).generate(QUESTION);
		expect(result.message.content).toEqual([{ type: 'text', text: 'Paris.' }]);
		expect(requests).toHaveLength(1);
		expect(requests[0].method).toBe('POST');
		// The credential's trailing /v1/ is dropped: the node adds /v1 itself.
		expect(requests[0].url).toBe('http://127.0.0.1:8700/v1/chat/completions');
		expect(requests[0].headers).toEqual({
			'x-tier-router-agent': 'support',
			'x-tier-router-min-tier': 'medium',
			'x-tier-router-max-tier': 'complex',
		});
		expect((requests[0].body as IDataObject).model).toBe('auto');
		expect(requests[0].timeout).toBe(4321);
	});

	it('sends no route headers without those options, and waits 120 s by default', async () => {
		const { ctx, requests } = supplyContext({}, () => ANSWER);
		await (await supplied(ctx)).generate(QUESTION);
		expect(requests[0].headers).toEqual({});
		expect(CHAT_MODEL_TIMEOUT_MS).toBe(120_000);
		expect(requests[0].timeout).toBe(120_000);
		// The option the user sees shows the same default.
		const timeoutOption = (
			new TierRouterChatModel().description.properties.find((p) => p.name === 'options')
				?.options as Array<{ name: string; default: unknown }>
		).find((o) => o.name === 'timeout');
		expect(timeoutOption?.default).toBe(120_000);
	});

	it('puts the latest answer’s route in the execution’s custom data, for the nodes after the chain', async () => {
		const { ctx } = supplyContext({}, () => ANSWER);
		const store = new Map<string, string>();
		const customData = {
			set: (key: string, value: string) => store.set(key, value),
			setAll: () => undefined,
			get: (key: string) => store.get(key),
			getAll: () => Object.fromEntries(store),
		};
		Object.defineProperty(ctx, 'customData', { get: () => customData });
		const model = await supplied(ctx);
		await model.generate(QUESTION);
		expect(Object.fromEntries(store)).toEqual({
			tier_router_request_id: 'chatcmpl-1',
			tier_router_tier: 'simple',
			tier_router_endpoint: 'llama3-8b',
			tier_router_escalations: '0',
			tier_router_reason: 'classifier',
		});
		// A second answer replaces the first: the keys always describe the latest answer.
		ctx.helpers.httpRequestWithAuthentication.mockResolvedValue({
			...ANSWER,
			id: 'chatcmpl-2',
			tier_router: { endpoint: 'qwen-14b', tier: 'medium', reason: 'classifier', escalations: 1 },
		});
		await model.generate(QUESTION);
		expect(store.get('tier_router_tier')).toBe('medium');
		expect(store.get('tier_router_request_id')).toBe('chatcmpl-2');
		expect(store.get('tier_router_escalations')).toBe('1');
	});

	it('answers even where the context has no execution data for custom data', async () => {
		const { ctx } = supplyContext({}, () => ANSWER);
		Object.defineProperty(ctx, 'customData', {
			get: () => {
				throw new Error('Cannot access customData: runExecutionData is not available');
			},
		});
		const result = await (await supplied(ctx)).generate(QUESTION);
		expect(result.message.content).toEqual([{ type: 'text', text: 'Paris.' }]);
	});

	it('says tier-router did not answer in time when the request times out', async () => {
		const { ctx } = supplyContext({ timeout: 250 }, () => {
			throw Object.assign(new Error('timeout of 250ms exceeded'), { code: 'ECONNABORTED' });
		});
		const error = await (await supplied(ctx)).generate(QUESTION).catch((e: unknown) => e);
		expect(error).toBeInstanceOf(NodeApiError);
		expect((error as NodeApiError).message).toBe('tier-router did not answer within 250 ms');
		expect((error as NodeApiError).description).toContain(
			'POST http://127.0.0.1:8700/v1/chat/completions',
		);
		expect((error as NodeApiError).description).not.toContain('Is tier-router running');
	});
});
