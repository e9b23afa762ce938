/** A mocked IExecuteFunctions for the node's tests: parameters, items and a scripted service. */
import type { IDataObject, IExecuteFunctions, IHttpRequestOptions, INode } from 'n8n-workflow';
import { mockDeep } from 'vitest-mock-extended';

export const NODE: INode = {
	id: 'node-1',
	name: 'Tier Router',
	type: 'n8n-nodes-tier-router.tierRouter',
	typeVersion: 1,
	position: [0, 0],
	parameters: {},
};

export type Handler = (request: IHttpRequestOptions) => unknown;

export interface Setup {
	items: IDataObject[];
	/** Parameter values; a function is called with the item index. */
	parameters: Record<string, unknown | ((itemIndex: number) => unknown)>;
	handler: Handler;
	continueOnFail?: boolean;
	/** The node's type in the workflow: `...tierRouterTool` when an AI Agent runs it as a tool. */
	nodeType?: string;
}

export function executeContext(setup: Setup) {
	const ctx = mockDeep<IExecuteFunctions>();
	const requests: IHttpRequestOptions[] = [];
	ctx.getInputData.mockReturnValue(setup.items.map((json) => ({ json })));
	ctx.getNode.mockReturnValue({ ...NODE, type: setup.nodeType ?? NODE.type });
	ctx.continueOnFail.mockReturnValue(setup.continueOnFail ?? false);
	ctx.getCredentials.mockResolvedValue({ baseUrl: 'http://127.0.0.1:8700/', apiKey: 'k' });
	ctx.getNodeParameter.mockImplementation(((
		name: string,
		itemIndex: number,
		fallback?: unknown,
	) => {
		const value = setup.parameters[name];
		if (typeof value === 'function') return (value as (i: number) => unknown)(itemIndex);
		return value === undefined ? fallback : value;
	}) as IExecuteFunctions['getNodeParameter']);
	ctx.helpers.httpRequestWithAuthentication.mockImplementation(async function (
		this: unknown,
		credential: string,
		request: IHttpRequestOptions,
	) {
		if (credential !== 'tierRouterApi') throw new Error(`unexpected credential ${credential}`);
		requests.push(request);
		return setup.handler(request);
	});
	return { ctx, requests };
}

/** A decision as tier-router's /v1/route answers it. */
export function decision(tier: string, extra: IDataObject = {}): IDataObject {
	return {
		request_id: `req-${tier}`,
		tier,
		confidence: 0.9,
		probabilities: { simple: 0.9, medium: 0.05, complex: 0.05 },
		category: 'classification',
		endpoint: {
			name: `${tier}-model`,
			api: 'ollama',
			base_url: 'http://127.0.0.1:11434',
			model: `${tier}:1b`,
		},
		fallback: [],
		reason: 'classifier',
		adjustments: [],
		reason_detail: 'classifier',
		model_version: 'tier-test',
		...extra,
	};
}

/** A failure shaped like the one n8n's request helper throws. */
export function httpFailure(status: number, data: unknown): Error {
	return Object.assign(new Error(`Request failed with status code ${status}`), {
		httpCode: String(status),
		response: { status, data },
	});
}

export function connectionRefused(): Error {
	return Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8700'), { code: 'ECONNREFUSED' });
}
