/**
 * n8n's generic chat messages and tools <-> the OpenAI chat-completions wire format that
 * tier-router's gateway speaks (`POST /v1/chat/completions`).
 */
import {
	getParametersJsonSchema,
	type FinishReason,
	type Message,
	type MessageContent,
	type Tool,
} from '@n8n/ai-node-sdk';
import type { IDataObject } from 'n8n-workflow';

export interface WireToolCall {
	id: string;
	type: 'function';
	function: { name: string; arguments: string };
}

export interface WireMessage extends IDataObject {
	role: string;
	content: string | null;
}

export interface ChatCompletion {
	id?: string;
	model?: string;
	choices?: Array<{
		message?: { role?: string; content?: string | null; tool_calls?: WireToolCall[] };
		finish_reason?: string | null;
	}>;
	usage?: { prompt_tokens?: number; completion_tokens?: number; total_tokens?: number };
	/** What tier-router adds: which endpoint answered, the route taken and why. */
	tier_router?: IDataObject;
}

function textOf(content: MessageContent[]): string {
	return content
		.filter((block): block is Extract<MessageContent, { type: 'text' }> => block.type === 'text')
		.map((block) => block.text)
		.join('\n');
}

function resultText(result: unknown): string {
	return typeof result === 'string' ? result : JSON.stringify(result);
}

/** One n8n message can become several wire messages (one per tool result). */
export function toWireMessages(messages: Message[]): WireMessage[] {
	const wire: WireMessage[] = [];
	for (const message of messages) {
		if (message.role === 'tool') {
			for (const block of message.content) {
				if (block.type !== 'tool-result') continue;
				wire.push({
					role: 'tool',
					tool_call_id: block.toolCallId,
					content: resultText(block.result),
				});
			}
			continue;
		}
		const entry: WireMessage = { role: message.role, content: textOf(message.content) };
		if (message.role === 'assistant') {
			const calls = message.content.flatMap((block): WireToolCall[] =>
				block.type === 'tool-call'
					? [
							{
								id: block.toolCallId ?? `call_${block.toolName}`,
								type: 'function',
								function: { name: block.toolName, arguments: block.input },
							},
						]
					: [],
			);
			if (calls.length > 0) {
				entry.tool_calls = calls as unknown as IDataObject[];
				if (entry.content === '') entry.content = null;
			}
		}
		wire.push(entry);
	}
	return wire;
}

export function toWireTools(tools: Tool[]): IDataObject[] {
	return tools.flatMap((tool): IDataObject[] =>
		tool.type === 'function'
			? [
					{
						type: 'function',
						function: {
							name: tool.name,
							description: tool.description ?? '',
							parameters: getParametersJsonSchema(tool) as IDataObject,
						},
					},
				]
			: [],
	);
}

export function fromWireFinish(reason: string | null | undefined): FinishReason {
	switch (reason) {
		case 'stop':
			return 'stop';
		case 'length':
			return 'length';
		case 'tool_calls':
			return 'tool-calls';
		case 'content_filter':
			return 'content-filter';
		default:
			return 'other';
	}
}

/** The assistant's answer as n8n content blocks: its text, then its tool calls. */
export function fromWireMessage(completion: ChatCompletion): MessageContent[] {
	const message = completion.choices?.[0]?.message ?? {};
	const content: MessageContent[] = [];
	if (message.content) content.push({ type: 'text', text: message.content });
	for (const call of message.tool_calls ?? []) {
		content.push({
			type: 'tool-call',
			toolCallId: call.id,
			toolName: call.function.name,
			input: call.function.arguments,
		});
	}
	return content;
}
