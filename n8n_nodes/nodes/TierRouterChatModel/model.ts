/**
 * A chat model backed by tier-router's OpenAI-compatible gateway. Each call goes to
 * `/v1/chat/completions` with model `auto` (or a tier or endpoint name); tier-router picks the
 * tier, checks the answer and escalates before it answers, so the caller sees one checked answer
 * and, under `providerMetadata.tier_router`, the route that produced it.
 */
import {
	BaseChatModel,
	type ChatModelConfig,
	type GenerateResult,
	type Message,
	type StreamChunk,
} from '@n8n/ai-node-sdk';
import type { IDataObject } from 'n8n-workflow';

import {
	type ChatCompletion,
	fromWireFinish,
	fromWireMessage,
	toWireMessages,
	toWireTools,
} from './wire';

export interface GatewayConfig extends ChatModelConfig {
	/** Sent as `x-tier-router-agent`: the portfolio can pin an agent to a tier or an endpoint. */
	agent?: string;
	/** Sent as `x-tier-router-min-tier` / `x-tier-router-max-tier`. */
	minTier?: string;
	maxTier?: string;
}

/** Sends one chat-completions request; the node supplies it with the credential's key. */
export type GatewayCall = (
	body: IDataObject,
	headers: Record<string, string>,
	config: GatewayConfig,
) => Promise<ChatCompletion>;

/** Told about every answer, with the route tier-router took for it. */
export type RoutedListener = (routing: IDataObject, text: string) => void;

export function routeHeaders(config: GatewayConfig): Record<string, string> {
	const headers: Record<string, string> = {};
	for (const [name, value] of Object.entries(config.headers ?? {})) {
		if (value !== undefined) headers[name] = value;
	}
	if (config.agent) headers['x-tier-router-agent'] = config.agent;
	if (config.minTier) headers['x-tier-router-min-tier'] = config.minTier;
	if (config.maxTier) headers['x-tier-router-max-tier'] = config.maxTier;
	return headers;
}

export class GatewayChatModel extends BaseChatModel<GatewayConfig> {
	constructor(
		modelId: string,
		private readonly call: GatewayCall,
		config: GatewayConfig = {},
		private readonly onRouted?: RoutedListener,
	) {
		super('tier-router', modelId, config);
	}

	requestBody(messages: Message[], config: GatewayConfig): IDataObject {
		const body: IDataObject = { model: this.modelId, messages: toWireMessages(messages) };
		if (config.temperature !== undefined) body.temperature = config.temperature;
		if (config.maxTokens !== undefined) body.max_tokens = config.maxTokens;
		if (config.topP !== undefined) body.top_p = config.topP;
		if (config.seed !== undefined) body.seed = config.seed;
		if (config.stopSequences?.length) body.stop = config.stopSequences;
		if (config.presencePenalty !== undefined) body.presence_penalty = config.presencePenalty;
		if (config.frequencyPenalty !== undefined) body.frequency_penalty = config.frequencyPenalty;
		const tools = toWireTools(this.tools);
		if (tools.length > 0) body.tools = tools;
		return body;
	}

	async generate(messages: Message[], config?: GatewayConfig): Promise<GenerateResult> {
		const merged = this.mergeConfig(config) as GatewayConfig;
		const completion = await this.call(
			this.requestBody(messages, merged),
			routeHeaders(merged),
			merged,
		);
		if (!completion.choices?.length) {
			throw new Error('tier-router answered without a choice');
		}
		const content = fromWireMessage(completion);
		// The answer's request id: tier-router's own when it sends one, else the completion's id
		// (unique per answer), so that an outcome record can name the answer it is about.
		const routing: IDataObject = { ...(completion.tier_router ?? {}) };
		if (routing.request_id === undefined && completion.id) routing.request_id = completion.id;
		const text = content.map((block) => (block.type === 'text' ? block.text : '')).join('');
		this.onRouted?.(routing, text);
		const result: GenerateResult = {
			finishReason: fromWireFinish(completion.choices[0].finish_reason),
			message: { role: 'assistant', content },
			providerMetadata: { tier_router: routing },
		};
		if (completion.id) result.id = completion.id;
		if (completion.usage) {
			result.usage = {
				promptTokens: completion.usage.prompt_tokens ?? 0,
				completionTokens: completion.usage.completion_tokens ?? 0,
				totalTokens: completion.usage.total_tokens ?? 0,
			};
		}
		return result;
	}

	/**
	 * Streams the checked answer: tier-router must see the whole answer to check it and escalate,
	 * so the answer arrives as one piece once it is ready (like the gateway's buffered streaming).
	 */
	async *stream(messages: Message[], config?: GatewayConfig): AsyncIterable<StreamChunk> {
		const result = await this.generate(messages, config);
		for (const block of result.message.content) {
			if (block.type === 'text') yield { type: 'text-delta', delta: block.text };
			if (block.type === 'tool-call') {
				yield {
					type: 'tool-call-delta',
					id: block.toolCallId,
					name: block.toolName,
					argumentsDelta: block.input,
				};
			}
		}
		const finish: StreamChunk = { type: 'finish', finishReason: result.finishReason ?? 'stop' };
		if (result.usage) finish.usage = result.usage;
		yield finish;
	}
}
