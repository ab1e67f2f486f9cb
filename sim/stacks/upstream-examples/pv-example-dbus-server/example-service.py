# org.pantavisor.Example on the system bus: GetInfo answers a JSON string, as upstream's example service does.
import json

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib


class ExampleService(dbus.service.Object):
    @dbus.service.method("org.pantavisor.Example", in_signature="", out_signature="s")
    def GetInfo(self):
        return json.dumps({"service": "dbus-example", "status": "active"})


DBusGMainLoop(set_as_default=True)
bus = dbus.SystemBus()
name = dbus.service.BusName("org.pantavisor.Example", bus)
ExampleService(bus, "/org/pantavisor/Example")
print("Starting D-Bus example service on org.pantavisor.Example...", flush=True)
GLib.MainLoop().run()
