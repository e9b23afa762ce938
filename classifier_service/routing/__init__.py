"""Routing: a prompt's features, the classifier's scores, and the policy that decides.

Read in the request's order: :mod:`classifier_service.features` (prompt -> features; at the
package's top because trained models pickle its path), :mod:`.classifier` (features -> scores,
nothing more) over the model loaded by :mod:`.artifact`, :mod:`.policy` (scores and
the portfolio's rules -> an endpoint and a reason), :mod:`.balancing` (which replica), and
:mod:`.quality` (is an answer good enough to keep). A new routing signal goes here. Imports the
portfolio data and the errors only: never the fleet, the gateway or the API.
"""
