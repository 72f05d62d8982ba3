"""The official Python SDK on the runner side of a session, against the local network: an
aiohttp app registered with register_runner whose `setup` route makes trickle channels and a
proxy for the calling session (create_trickle_channels, create_proxy with the request's
headers) and removes one (remove_trickle_channels), and whose `bye` route ends the session
(stop_runner_session). Prints {"runner_id", "url"} when registered, one JSON line per call it
served, and exits when stdin closes.

usage: runner_callbacks_peer.py ORCH_URL SECRET
"""
import asyncio
import json
import sys

from aiohttp import web

from livepeer_gateway import live_runner


async def main() -> None:
    orch, secret = sys.argv[1], sys.argv[2]

    async def setup(request: web.Request) -> web.Response:
        channels = await live_runner.create_trickle_channels(
            request, [{"name": "out", "mime_type": "video/MP2T"}, {"name": "scratch", "mime_type": ""}],
        )
        proxy = await live_runner.create_proxy(request)
        deleted = await live_runner.remove_trickle_channels(request, ["scratch"])
        result = {"channels": channels, "proxy": {"proxy_id": proxy.proxy_id, "url": proxy.url}, "deleted": deleted}
        print(json.dumps({"served": "setup", **result}), flush=True)
        return web.json_response(result)

    async def bye(request: web.Request) -> web.Response:
        await live_runner.stop_runner_session(request)
        print(json.dumps({"served": "bye"}), flush=True)
        return web.Response(text="bye")

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "session": request.headers.get("Livepeer-Session-Id", "")})

    app = web.Application()
    app.router.add_post("/py/setup", setup)
    app.router.add_post("/py/bye", bye)
    app.router.add_route("*", "/py/{tail:.*}", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    reg = await live_runner.register_runner(
        orch, secret=secret, runner_url=f"http://127.0.0.1:{port}/py", app="py-callbacks",
        capacity=1, auto_detect_gpu=False, heartbeat_interval_s=0.2,
    )
    print(json.dumps({"runner_id": reg.runner_id, "url": f"http://127.0.0.1:{port}/py"}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await reg.close()
    await runner.cleanup()


asyncio.run(main())
