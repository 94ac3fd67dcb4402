"""Spawn mcp-ollama as a subprocess with the MCP SDK's client and hold a two-turn conversation."""

import asyncio
import os
import sys

from mcp import Client, StdioServerParameters


async def main() -> None:
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_ollama"],
        # The SDK passes only a few variables to the child: hand over what the server needs.
        env={"OLLAMA_HOST": os.environ.get("OLLAMA_HOST", "127.0.0.1:11434")},
    )
    async with Client(server) as client:
        first = await client.call_tool("chat", {"message": "Name three rivers in France."})
        session_id = first.structured_content["session_id"]
        print(first.content[0].text)

        second = await client.call_tool(
            "chat",
            {"message": "Which of them is the longest?", "session_id": session_id},
        )
        print(second.content[0].text)
        print("session:", session_id, "tokens:", second.structured_content["usage"])


if __name__ == "__main__":
    asyncio.run(main())
