import type {
	IAuthenticateGeneric,
	ICredentialTestRequest,
	ICredentialType,
	Icon,
	INodeProperties,
} from 'n8n-workflow';

import { BASE_URL_SUFFIX } from '../nodes/shared/transport';

/** Where a tier-router service listens, and the API key it expects (if it has any). */
export class TierRouterApi implements ICredentialType {
	name = 'tierRouterApi';

	displayName = 'Tier Router API';

	documentationUrl = 'https://github.com/tier-router/tier-router/tree/main/n8n_nodes#credentials';

	icon: Icon = {
		light: 'file:../icons/tier-router.svg',
		dark: 'file:../icons/tier-router.dark.svg',
	};

	properties: INodeProperties[] = [
		{
			displayName: 'Base URL',
			name: 'baseUrl',
			type: 'string',
			default: 'http://127.0.0.1:8700',
			placeholder: 'http://127.0.0.1:8700',
			description:
				'Where tier-router listens, e.g. http://127.0.0.1:8700 (a trailing /v1 is ignored)',
			required: true,
		},
		{
			displayName: 'API Key',
			name: 'apiKey',
			type: 'string',
			typeOptions: { password: true },
			default: '',
			description:
				'One of the keys in TIER_ROUTER_API_KEYS (or TIER_ROUTER_ADMIN_KEYS). Leave empty when the service has no keys configured.',
		},
	];

	authenticate: IAuthenticateGeneric = {
		type: 'generic',
		properties: {
			headers: {
				Authorization: '=Bearer {{$credentials.apiKey}}',
			},
		},
	};

	// An authenticated endpoint, so that a wrong key fails the test. The base URL loses a trailing
	// `/v1` and slashes, as in the nodes' requests.
	test: ICredentialTestRequest = {
		request: {
			baseURL: `={{$credentials.baseUrl.trim().replace(${String(BASE_URL_SUFFIX)}, "")}}`,
			url: '/v1/portfolio',
			method: 'GET',
		},
	};
}
