import type { IDataObject, INodeExecutionData, ISupplyDataFunctions } from 'n8n-workflow';
import { NodeConnectionTypes } from 'n8n-workflow';
import { describe, expect, it, vi } from 'vitest';
import { mockDeep } from 'vitest-mock-extended';

import { GatewayChatModel, type GatewayCall } from '../nodes/TierRouterChatModel/model';
import { RoutingLog, showRoutingInOutput } from '../nodes/TierRouterChatModel/routingOutput';
import type { ChatCompletion } from '../nodes/TierRouterChatModel/wire';

const ROUTE = { endpoint: 'qwen-14b', tier: 'medium', reason: 'classifier', escalations: 1 };

function completion(
	message: NonNullable<ChatCompletion['choices']>[0]['message'],
	finish = 'stop',
): ChatCompletion {
	return {
		id: 'chatcmpl-1',
		choices: [{ message, finish_reason: finish }],
		usage: { prompt_tokens: 12, completion_tokens: 8, total_tokens: 20 },
		tier_router: ROUTE,
	};
}

describe('GatewayChatModel', () => {
	it('asks the gateway with model auto and the route headers, and returns the checked answer with its route', async () => {
		const call = vi
			.fn<GatewayCall>()
			.mockResolvedValue(completion({ role: 'assistant', content: 'Paris.' }));
		const routed = vi.fn();
		const model = new GatewayChatModel(
			'auto',
			call,
			{ agent: 'support', minTier: 'simple', maxTier: 'medium', temperature: 0.2, maxTokens: 64 },
			routed,
		);
		const result = await model.generate([
			{ role: 'system', content: [{ type: 'text', text: 'Be brief.' }] },
			{ role: 'user', content: [{ type: 'text', text: 'Capital of France?' }] },
		]);
		const [body, headers] = call.mock.calls[0];
		expect(body).toEqual({
			model: 'auto',
			messages: [
				{ role: 'system', content: 'Be brief.' },
				{ role: 'user', content: 'Capital of France?' },
			],
			temperature: 0.2,
			max_tokens: 64,
		});
		expect(headers).toEqual({
			'x-tier-router-agent': 'support',
			'x-tier-router-min-tier': 'simple',
			'x-tier-router-max-tier': 'medium',
		});
		expect(result.message.content).toEqual([{ type: 'text', text: 'Paris.' }]);
		expect(result.finishReason).toBe('stop');
		expect(result.usage).toEqual({ promptTokens: 12, completionTokens: 8, totalTokens: 20 });
		// The gateway sends no request id: the completion's id (unique per answer) stands in.
		const withId = { ...ROUTE, request_id: 'chatcmpl-1' };
		expect(result.providerMetadata).toEqual({ tier_router: withId });
		expect(routed).toHaveBeenCalledWith(withId, 'Paris.');
	});

	it('sends tools and tool results in OpenAI form and reads tool calls back', async () => {
		const call = vi.fn<GatewayCall>().mockResolvedValue(
			completion(
				{
					role: 'assistant',
					content: null,
					tool_calls: [
						{
							id: 'call_2',
							type: 'function',
							function: { name: 'weather', arguments: '{"city":"Oslo"}' },
						},
					],
				},
				'tool_calls',
			),
		);
		const model = new GatewayChatModel('auto', call).withTools([
			{
				type: 'function',
				name: 'weather',
				description: 'The weather in a city',
				inputSchema: {
					type: 'object',
					properties: { city: { type: 'string' } },
					required: ['city'],
				},
			},
		]);
		const result = await model.generate([
			{ role: 'user', content: [{ type: 'text', text: 'Weather in Bergen and Oslo?' }] },
			{
				role: 'assistant',
				content: [
					{
						type: 'tool-call',
						toolCallId: 'call_1',
						toolName: 'weather',
						input: '{"city":"Bergen"}',
					},
				],
			},
			{
				role: 'tool',
				content: [{ type: 'tool-result', toolCallId: 'call_1', result: { rain: true } }],
			},
		]);
		const [body] = call.mock.calls[0];
		expect(body.messages).toEqual([
			{ role: 'user', content: 'Weather in Bergen and Oslo?' },
			{
				role: 'assistant',
				content: null,
				tool_calls: [
					{
						id: 'call_1',
						type: 'function',
						function: { name: 'weather', arguments: '{"city":"Bergen"}' },
					},
				],
			},
			{ role: 'tool', tool_call_id: 'call_1', content: '{"rain":true}' },
		]);
		expect((body.tools as IDataObject[])[0]).toMatchObject({
			type: 'function',
			function: { name: 'weather', description: 'The weather in a city' },
		});
		expect(result.finishReason).toBe('tool-calls');
		expect(result.message.content).toEqual([
			{ type: 'tool-call', toolCallId: 'call_2', toolName: 'weather', input: '{"city":"Oslo"}' },
		]);
	});

	it('streams the checked answer in one piece, then finishes', async () => {
		const call = vi
			.fn<GatewayCall>()
			.mockResolvedValue(completion({ role: 'assistant', content: 'All checked.' }));
		const chunks = [];
		for await (const chunk of new GatewayChatModel('auto', call).stream([
			{ role: 'user', content: [{ type: 'text', text: 'hi' }] },
		])) {
			chunks.push(chunk);
		}
		expect(chunks.map((c) => c.type)).toEqual(['text-delta', 'finish']);
		expect(chunks[0]).toEqual({ type: 'text-delta', delta: 'All checked.' });
	});

	it('fails clearly when the gateway answers without a choice', async () => {
		const call = vi.fn<GatewayCall>().mockResolvedValue({ choices: [] });
		await expect(
			new GatewayChatModel('auto', call).generate([
				{ role: 'user', content: [{ type: 'text', text: 'hi' }] },
			]),
		).rejects.toThrow('tier-router answered without a choice');
	});
});

describe('the route in the chat model node output', () => {
	it('adds tier_router to the output item that carries the same answer', () => {
		const ctx = mockDeep<ISupplyDataFunctions>();
		ctx.getNextRunIndex.mockReturnValue(7);
		const log = new RoutingLog();
		log.record(ROUTE, 'Paris.');
		const wrapped = showRoutingInOutput(ctx, log);
		const item: INodeExecutionData = {
			json: { response: { generations: [[{ text: 'Paris.' }]] } },
		};
		wrapped.addOutputData(NodeConnectionTypes.AiLanguageModel, 0, [[item]]);
		const [, , data] = ctx.addOutputData.mock.calls[0];
		expect((data as INodeExecutionData[][])[0][0].json.tier_router).toEqual(ROUTE);
		// Another answer's output is left as it is, and other methods reach the real context.
		wrapped.addOutputData(NodeConnectionTypes.AiLanguageModel, 1, [[item]]);
		expect(
			(ctx.addOutputData.mock.calls[1][2] as INodeExecutionData[][])[0][0].json.tier_router,
		).toBeUndefined();
		expect(wrapped.getNextRunIndex()).toBe(7);
	});
});
