"""The account service over HTTP."""

from __future__ import annotations

import aiohttp

from sandbox_services.event_sourcing.domain import (
    Account,
    Command,
    ConcurrencyConflict,
    DomainError,
    Event,
)


class AccountsClient:
    def __init__(self, address: str, *, timeout_s: float = 200.0) -> None:
        self._url = f"http://{address}"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))

    async def execute(self, command: Command) -> Event:
        body = {
            "type": command.type,
            "amount": command.amount,
            "expected_version": command.expected_version,
        }
        async with self._session.post(
            f"{self._url}/accounts/{command.account_id}/commands", json=body
        ) as answer:
            data = await answer.json()
            if answer.status == 409:
                raise ConcurrencyConflict(
                    command.account_id, data["expected_version"], data["actual_version"]
                )
            if answer.status != 201:
                raise DomainError(data.get("detail", str(answer.status)))
            return Event.from_dict(data)

    async def account(self, account_id: str, *, as_of: int | None = None) -> Account:
        params = {} if as_of is None else {"as_of": str(as_of)}
        async with self._session.get(f"{self._url}/accounts/{account_id}", params=params) as answer:
            data = await answer.json()
            if answer.status != 200:
                raise DomainError(data.get("detail", str(answer.status)))
            return Account(**data)

    async def head(self) -> int:
        async with self._session.get(f"{self._url}/log/head") as answer:
            return (await answer.json())["events"]

    async def reconnects(self) -> int:
        """Return how often the account service lost the broker while appending."""
        async with self._session.get(f"{self._url}/log/head") as answer:
            return (await answer.json())["reconnects"]

    async def set_writer_schema(self, version: int) -> None:
        """Make the service append events in the shape of schema ``version`` (1 or 2)."""
        async with self._session.post(
            f"{self._url}/log/schema", json={"version": version}
        ) as answer:
            if answer.status != 200:
                raise DomainError((await answer.json()).get("detail", str(answer.status)))

    async def load(self, *, commands: int, accounts: int = 5, seed: int = 1) -> dict:
        body = {"commands": commands, "accounts": accounts, "seed": seed}
        async with self._session.post(f"{self._url}/load", json=body) as answer:
            data = await answer.json()
            if answer.status != 200:
                raise DomainError(data.get("detail", str(answer.status)))
            return data

    async def close(self) -> None:
        await self._session.close()
