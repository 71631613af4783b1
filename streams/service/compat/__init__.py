"""The one door to Faust's and aiokafka's internals (self-checked at start-up), and the runtime tweaks that need them."""
