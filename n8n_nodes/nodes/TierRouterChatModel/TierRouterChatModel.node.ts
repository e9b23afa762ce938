import { supplyModel } from '@n8n/ai-node-sdk';
import type {
	INodeType,
	INodeTypeDescription,
	ISupplyDataFunctions,
	SupplyData,
} from 'n8n-workflow';
import { NodeConnectionTypes } from 'n8n-workflow';

import { CREDENTIAL_NAME, tierRouterRequest } from '../shared/transport';
import { type GatewayCall, GatewayChatModel } from './model';
import { publishRouting, RoutingLog, showRoutingInOutput } from './routingOutput';
import type { ChatCompletion } from './wire';

/**
 * Milliseconds to wait for one checked answer, escalations included, unless the Timeout option
 * says otherwise: a call may run the cheap model, check it, then run a larger one.
 */
export const CHAT_MODEL_TIMEOUT_MS = 120_000;

interface ModelOptions {
	agent?: string;
	minTier?: string;
	maxTier?: string;
	temperature?: number;
	maxTokens?: number;
	timeout?: number;
}

export class TierRouterChatModel implements INodeType {
	description: INodeTypeDescription = {
		displayName: 'Tier Router Chat Model',
		name: 'tierRouterChatModel',
		icon: {
			light: 'file:../../icons/tier-router.svg',
			dark: 'file:../../icons/tier-router.dark.svg',
		},
		group: ['transform'],
		version: [1],
		subtitle: '={{ "model: " + $parameter["model"] }}',
		description:
			'A chat model that routes each call to the right local LLM tier, checks the answer and escalates',
		defaults: { name: 'Tier Router Chat Model' },
		codex: {
			categories: ['AI'],
			subcategories: {
				AI: ['Language Models', 'Root Nodes'],
				'Language Models': ['Chat Models (Recommended)'],
			},
			resources: {
				primaryDocumentation: [
					{
						url: 'https://github.com/tier-router/tier-router/tree/main/n8n_nodes#the-tier-router-chat-model',
					},
				],
			},
		},
		inputs: [],
		outputs: [NodeConnectionTypes.AiLanguageModel],
		outputNames: ['Model'],
		credentials: [{ name: CREDENTIAL_NAME, required: true }],
		properties: [
			{
				displayName: 'Model',
				name: 'model',
				type: 'string',
				default: 'auto',
				description:
					'Auto lets tier-router choose per call; a tier name starts at that tier; an endpoint name pins one model',
			},
			{
				displayName: 'Options',
				name: 'options',
				type: 'collection',
				placeholder: 'Add option',
				default: {},
				options: [
					{
						displayName: 'Agent',
						name: 'agent',
						type: 'string',
						default: '',
						description:
							'Sent as x-tier-router-agent: the portfolio can pin an agent to a tier or an endpoint',
					},
					{
						displayName: 'Maximum Number of Tokens',
						name: 'maxTokens',
						type: 'number',
						typeOptions: { minValue: 1 },
						default: 1024,
						description: 'The most tokens an answer may have',
					},
					{
						displayName: 'Maximum Tier',
						name: 'maxTier',
						type: 'string',
						default: '',
						description: 'Sent as x-tier-router-max-tier: never route or escalate above this tier',
					},
					{
						displayName: 'Minimum Tier',
						name: 'minTier',
						type: 'string',
						default: '',
						description: 'Sent as x-tier-router-min-tier: never route below this tier',
					},
					{
						displayName: 'Sampling Temperature',
						name: 'temperature',
						type: 'number',
						typeOptions: { minValue: 0, maxValue: 2, numberPrecision: 1 },
						default: 0.7,
						description: 'Lower is more deterministic',
					},
					{
						displayName: 'Timeout (Ms)',
						name: 'timeout',
						type: 'number',
						typeOptions: { minValue: 1 },
						default: CHAT_MODEL_TIMEOUT_MS,
						description:
							'How long to wait for a checked answer, escalations included, in milliseconds',
					},
				],
			},
		],
	};

	async supplyData(this: ISupplyDataFunctions, itemIndex: number): Promise<SupplyData> {
		const modelId = (this.getNodeParameter('model', itemIndex, 'auto') as string) || 'auto';
		const options = this.getNodeParameter('options', itemIndex, {}) as ModelOptions;
		const call: GatewayCall = async (body, headers, config) =>
			await tierRouterRequest<ChatCompletion>(this, {
				method: 'POST',
				path: '/v1/chat/completions',
				body,
				headers,
				timeoutMs: config.timeout ?? options.timeout ?? CHAT_MODEL_TIMEOUT_MS,
				itemIndex,
			});
		const log = new RoutingLog();
		const model = new GatewayChatModel(
			modelId,
			call,
			{
				agent: options.agent,
				minTier: options.minTier,
				maxTier: options.maxTier,
				temperature: options.temperature,
				maxTokens: options.maxTokens,
				timeout: options.timeout,
			},
			(routing, text) => {
				log.record(routing, text);
				publishRouting(this, routing);
			},
		);
		return supplyModel(showRoutingInOutput(this, log), model);
	}
}
