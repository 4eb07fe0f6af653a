"""RPCs of the contract whose behaviour a later milestone builds.

They answer UNIMPLEMENTED with reason NOT_YET_IMPLEMENTED and say what is
missing, after authentication and the API's own limits have run: the server
never pretends to have done work it has not done.
"""

from __future__ import annotations

from typing import Any

from batchgrpc.errors import NotYetImplemented


def pending(rpc: str, what: str) -> Any:
    """A servicer method that refuses, naming the missing behaviour.

    Typed `Any`: it stands in for unary and streaming methods alike.
    """

    async def method(self: object, request: object, context: object) -> Any:
        raise NotYetImplemented(f"{rpc} is in the contract but not served yet: {what}.")

    method.__name__ = rpc.rpartition(".")[2]
    return method
