/** The item's prompt, from the node's Prompt parameter, checked before anything is sent. */
import type { IExecuteFunctions } from 'n8n-workflow';
import { NodeOperationError } from 'n8n-workflow';

export function promptOf(ctx: IExecuteFunctions, itemIndex: number): string {
	const value = ctx.getNodeParameter('prompt', itemIndex, '') as unknown;
	if (typeof value === 'string' && value.trim() !== '') return value;
	if (typeof value === 'number' || typeof value === 'boolean') return String(value);
	throw new NodeOperationError(ctx.getNode(), `Item ${itemIndex + 1} has no prompt`, {
		itemIndex,
		description:
			value === undefined || value === null || value === ''
				? 'The Prompt parameter is empty for this item: point it at the field that holds the prompt, e.g. {{ $json.prompt }}.'
				: `The Prompt parameter must be text, got ${Array.isArray(value) ? 'a list' : typeof value}.`,
	});
}
