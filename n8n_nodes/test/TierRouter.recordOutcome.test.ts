import type { IDataObject, IHttpRequestOptions } from 'n8n-workflow';
import { NodeApiError, NodeOperationError } from 'n8n-workflow';
import { describe, expect, it } from 'vitest';

import { TierRouter } from '../nodes/TierRouter/TierRouter.node';
import { connectionRefused, executeContext, httpFailure } from './context';

/** tier-router's POST /v1/feedback for outcome records: 422 for a tier it does not know. */
function feedback(request: IHttpRequestOptions) {
	const body = request.body as IDataObject;
	if (body.tier === 'huge') {
		throw httpFailure(422, { detail: "tier: unknown tier 'huge'; tiers: simple, medium, complex" });
	}
	return { status: 'recorded', request_id: body.request_id ?? 'generated-1' };
}

const ITEMS = [
	{ question: 'Capital of France?', text: 'Paris.', tier: 'simple', approved: true, id: 'r1' },
	{ question: 'Prove it.', text: 'I am not sure.', tier: 'medium', approved: false, id: 'r2' },
];

const parameters = {
	operation: 'recordOutcome',
	prompt: (i: number) => ITEMS[i].question,
	outcomeTier: (i: number) => ITEMS[i].tier,
	score: (i: number) => (ITEMS[i].approved ? 1 : 0),
	outcomeOptions: (i: number) => ({ answer: ITEMS[i].text, requestId: ITEMS[i].id }),
};

describe('Tier Router: recordOutcome', () => {
	it('posts one outcome record per item to /v1/feedback and puts the answer under outcome', async () => {
		const { ctx, requests } = executeContext({ items: ITEMS, parameters, handler: feedback });
		const [recorded, failed] = await new TierRouter().execute.call(ctx);
		expect(requests.map((r) => [r.method, r.url])).toEqual([
			['POST', 'http://127.0.0.1:8700/v1/feedback'],
			['POST', 'http://127.0.0.1:8700/v1/feedback'],
		]);
		expect(requests.map((r) => r.body)).toEqual([
			{
				prompt: 'Capital of France?',
				tier: 'simple',
				score: 1,
				answer: 'Paris.',
				request_id: 'r1',
			},
			{ prompt: 'Prove it.', tier: 'medium', score: 0, answer: 'I am not sure.', request_id: 'r2' },
		]);
		expect(failed).toEqual([]);
		expect(recorded.map((item) => item.json.outcome)).toEqual([
			{ status: 'recorded', request_id: 'r1', tier: 'simple', score: 1 },
			{ status: 'recorded', request_id: 'r2', tier: 'medium', score: 0 },
		]);
		expect(recorded[1].json.question).toBe('Prove it.');
		expect(recorded.map((item) => item.pairedItem)).toEqual([{ item: 0 }, { item: 1 }]);
	});

	it('sends only the options that are set, a score given as text as a number, and the source', async () => {
		const { requests } = await (async () => {
			const setup = executeContext({
				items: [{}],
				parameters: {
					operation: 'recordOutcome',
					prompt: 'q',
					outcomeTier: ' complex ',
					score: '0.5',
					outcomeOptions: { answer: '', source: 'judge', category: 'math', timeout: 999 },
				},
				handler: feedback,
			});
			await new TierRouter().execute.call(setup.ctx);
			return setup;
		})();
		expect(requests[0].body).toEqual({
			prompt: 'q',
			tier: 'complex',
			score: 0.5,
			source: 'judge',
			category: 'math',
		});
		expect(requests[0].timeout).toBe(999);
	});

	it('refuses a score outside 0-1, a missing tier or prompt before sending, naming the item 1-based', async () => {
		const cases: Array<[IDataObject, string]> = [
			[{ score: 1.5 }, 'Item 2 has no score between 0 and 1'],
			[{ score: 'good' }, 'Item 2 has no score between 0 and 1'],
			[{ score: '' }, 'Item 2 has no score between 0 and 1'],
			[{ outcomeTier: '' }, 'Item 2 has no tier'],
			[{ prompt: ' ' }, 'Item 2 has no prompt'],
		];
		for (const [override, message] of cases) {
			const { ctx, requests } = executeContext({
				items: ITEMS,
				parameters: {
					...parameters,
					...Object.fromEntries(
						Object.entries(override).map(([name, value]) => [
							name,
							(i: number) =>
								i === 1
									? value
									: (parameters as unknown as Record<string, (i: number) => unknown>)[name](i),
						]),
					),
					score: (i: number) => (i === 1 && 'score' in override ? override.score : 1),
				},
				handler: feedback,
			});
			const error = await new TierRouter().execute.call(ctx).catch((e: unknown) => e);
			expect(error).toBeInstanceOf(NodeOperationError);
			expect((error as NodeOperationError).message).toBe(message);
			expect((error as NodeOperationError).context.itemIndex).toBe(1);
			expect(requests).toHaveLength(1); // item 1 was recorded, item 2 never sent
		}
	});

	it('fails with tier-router’s reason on a 422, naming the item', async () => {
		const { ctx } = executeContext({
			items: [ITEMS[0]],
			parameters: { ...parameters, outcomeTier: 'huge' },
			handler: feedback,
		});
		const error = await new TierRouter().execute.call(ctx).catch((e: unknown) => e);
		expect(error).toBeInstanceOf(NodeApiError);
		expect((error as NodeApiError).message).toBe(
			"tier-router answered HTTP 422: tier: unknown tier 'huge'; tiers: simple, medium, complex",
		);
		expect((error as NodeApiError).context.itemIndex).toBe(0);
	});

	it('with Continue On Fail, a record refused (429) or not sent leaves on failed, the others on recorded', async () => {
		let calls = 0;
		const { ctx } = executeContext({
			items: [...ITEMS, { question: '', tier: 'simple', approved: true, id: 'r3' }],
			parameters: {
				...parameters,
				prompt: (i: number) => [ITEMS[0].question, ITEMS[1].question, ''][i],
				outcomeTier: (i: number) => ['simple', 'medium', 'simple'][i],
				score: 1,
				outcomeOptions: {},
			},
			handler: (request) => {
				calls += 1;
				if (calls === 2) throw httpFailure(429, { detail: 'too many requests' });
				return feedback(request);
			},
			continueOnFail: true,
		});
		const [recorded, failed] = await new TierRouter().execute.call(ctx);
		expect(calls).toBe(2);
		expect(recorded.map((item) => item.json.id)).toEqual(['r1']);
		expect(failed.map((item) => [item.json.id, item.json.error, item.pairedItem])).toEqual([
			['r2', 'tier-router answered HTTP 429: too many requests', { item: 1 }],
			['r3', 'Item 3 has no prompt', { item: 2 }],
		]);
		expect(failed[0].error).toBeInstanceOf(NodeApiError);
	});

	it('with Answered By Tier empty, records the tier, request id and endpoint of the chat model’s latest answer', async () => {
		const { ctx, requests } = executeContext({
			items: [ITEMS[0]],
			parameters: { ...parameters, outcomeTier: '', outcomeOptions: { answer: 'Paris.' } },
			handler: feedback,
		});
		const data: Record<string, string> = {
			tier_router_tier: 'medium',
			tier_router_request_id: 'chatcmpl-9',
			tier_router_endpoint: 'qwen-14b',
		};
		Object.defineProperty(ctx, 'customData', {
			get: () => ({ get: (key: string) => data[key], set: () => undefined }),
		});
		const [recorded] = await new TierRouter().execute.call(ctx);
		expect(requests[0].body).toEqual({
			prompt: 'Capital of France?',
			tier: 'medium',
			score: 1,
			request_id: 'chatcmpl-9',
			endpoint: 'qwen-14b',
			answer: 'Paris.',
		});
		expect(recorded[0].json.outcome).toMatchObject({
			tier: 'medium',
			request_id: 'chatcmpl-9',
			endpoint: 'qwen-14b',
		});
	});

	it('says tier-router is not reachable when it is down', async () => {
		const { ctx } = executeContext({
			items: [ITEMS[0]],
			parameters,
			handler: () => {
				throw connectionRefused();
			},
		});
		const error = await new TierRouter().execute.call(ctx).catch((e: unknown) => e);
		expect((error as NodeApiError).message).toBe('tier-router is not reachable (ECONNREFUSED)');
		expect((error as NodeApiError).description).toContain('POST http://127.0.0.1:8700/v1/feedback');
	});
});
