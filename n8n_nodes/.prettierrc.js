// The formatting n8n's node tooling expects: tabs, single quotes, trailing commas, 100 columns.
module.exports = {
	semi: true,
	singleQuote: true,
	trailingComma: 'all',
	useTabs: true,
	tabWidth: 2,
	printWidth: 100,
	arrowParens: 'always',
	endOfLine: 'lf',
};
